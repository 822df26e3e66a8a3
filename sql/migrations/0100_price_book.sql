-- Prices become a book over time: a price is in force from effective_at
-- until the next price of the same series (meter, asset, dimensions,
-- scope) takes over or it is archived. scope is '' for the default book,
-- 'plan:<plan version id>' for a plan version's prices and
-- 'subscription:<id>' for a subscription's overrides. The old table's
-- unique constraint cannot be dropped portably, so the book is a new
-- table that takes the old one's rows and then its name.
CREATE TABLE price_book (
    id UUID PRIMARY KEY,
    meter_id UUID NOT NULL REFERENCES meters (id),
    asset TEXT NOT NULL,
    spec JSONB NOT NULL,
    dimensions_key TEXT NOT NULL,
    scope TEXT NOT NULL,
    effective_at TIMESTAMPTZ NOT NULL,
    archived_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT price_book_series_effective UNIQUE (meter_id, asset, dimensions_key, scope, effective_at)
);
