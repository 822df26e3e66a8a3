ALTER TABLE prices ADD COLUMN idempotency_key TEXT;
