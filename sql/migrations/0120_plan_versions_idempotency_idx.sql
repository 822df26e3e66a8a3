CREATE UNIQUE INDEX plan_versions_idempotency_key ON plan_versions (plan_code, idempotency_key);
