ALTER TABLE prices ADD COLUMN request_hash BYTEA;
