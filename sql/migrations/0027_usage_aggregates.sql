-- The running aggregate per meter, customer, dimensions and billing period:
-- the Q of the marginal-price rule, changed in the same transaction as the
-- debit it causes.
CREATE TABLE usage_aggregates (
    meter_id UUID NOT NULL,
    customer_id TEXT NOT NULL,
    dims_key TEXT NOT NULL,
    asset TEXT NOT NULL,
    period_start TIMESTAMPTZ NOT NULL,
    quantity NUMERIC NOT NULL,
    latest_ts TIMESTAMPTZ,
    amount NUMERIC(38, 12) NOT NULL,
    PRIMARY KEY (meter_id, customer_id, dims_key, asset, period_start)
);
