-- The currency of topups.price.
ALTER TABLE topups ADD COLUMN currency TEXT;
