-- The distinct values a unique_count meter has seen in a period.
CREATE TABLE usage_unique_values (
    meter_id UUID NOT NULL,
    customer_id TEXT NOT NULL,
    dims_key TEXT NOT NULL,
    asset TEXT NOT NULL,
    period_start TIMESTAMPTZ NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (meter_id, customer_id, dims_key, asset, period_start, value)
);
