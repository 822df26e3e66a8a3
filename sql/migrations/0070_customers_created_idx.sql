-- Listing customers pages through them newest first by (created_at, id); a
-- search by prefix (q) filters that walk, so it needs no index of its own.
CREATE INDEX customers_created_idx ON customers (created_at, id);
