-- Every unit price a credits asset has had, from when it applied: a change
-- never re-rates the past, and a period converts at the rate in force at
-- its start.
CREATE TABLE asset_rates (
    asset TEXT NOT NULL REFERENCES assets (code),
    effective_at TIMESTAMPTZ NOT NULL,
    unit_price NUMERIC(38, 12) NOT NULL CHECK (unit_price > 0),
    PRIMARY KEY (asset, effective_at)
);
