-- The meters an applied event matched but could not count (a property
-- absent or not a number): [{"meter": code, "reason": text}]. NULL when
-- every matched meter counted it.
ALTER TABLE events ADD COLUMN misses JSONB;
