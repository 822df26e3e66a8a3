CREATE UNIQUE INDEX plans_idempotency_key ON plans (idempotency_key);
