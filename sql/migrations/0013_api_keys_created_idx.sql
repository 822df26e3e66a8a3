-- Listing keys pages through them newest first by (created_at, id).
CREATE INDEX api_keys_created_idx ON api_keys (created_at, id);
