CREATE UNIQUE INDEX prices_idempotency_key ON prices (idempotency_key);
