-- The part of an event's charge the credits did not cover (negative: a
-- credit back against outstanding overage).
ALTER TABLE usage_records ADD COLUMN overage NUMERIC(38, 12);
