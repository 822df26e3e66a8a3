-- A POST that creates a plan, a version or a price may carry an
-- Idempotency-Key: a retry answers what the first request made instead
-- of making it again. The request's hash tells a retry from a reuse.
ALTER TABLE plans ADD COLUMN idempotency_key TEXT;
