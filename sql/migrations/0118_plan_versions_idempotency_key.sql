ALTER TABLE plan_versions ADD COLUMN idempotency_key TEXT;
