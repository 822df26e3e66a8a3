-- A price turns a meter's running aggregate into money in one asset. The
-- dimensions key is the canonical form of the dimensions it applies to, so
-- one meter cannot have two prices for the same asset and dimensions.
CREATE TABLE prices (
    id UUID PRIMARY KEY,
    meter_id UUID NOT NULL REFERENCES meters (id),
    asset TEXT NOT NULL,
    spec JSONB NOT NULL,
    dimensions_key TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT prices_meter_asset_dims UNIQUE (meter_id, asset, dimensions_key)
);
