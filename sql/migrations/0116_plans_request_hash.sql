ALTER TABLE plans ADD COLUMN request_hash BYTEA;
