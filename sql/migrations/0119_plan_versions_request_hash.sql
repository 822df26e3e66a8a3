ALTER TABLE plan_versions ADD COLUMN request_hash BYTEA;
