-- What a top-up of a priced credits asset costs, in money (amount × the unit
-- price in force when it was requested); NULL for unpriced assets.
ALTER TABLE topups ADD COLUMN price NUMERIC(38, 12);
