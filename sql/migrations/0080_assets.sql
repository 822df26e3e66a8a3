-- Assets a wallet may hold, described: credits (optionally worth money: the
-- currency they are sold and invoiced in and the current price of one
-- credit) or a currency (its minor units). An asset not listed here is
-- unpriced credits, as every asset was before this table.
CREATE TABLE assets (
    code TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('credits', 'currency')),
    currency TEXT,
    unit_price NUMERIC(38, 12) CHECK (unit_price > 0),
    minor_units INT,
    name TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
