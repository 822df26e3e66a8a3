-- What one event did to one meter: the aggregate before and after, and what
-- it cost (negative: credited back) in which wallet.
CREATE TABLE usage_records (
    event_id TEXT NOT NULL,
    meter_id UUID NOT NULL,
    asset TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    dims_key TEXT NOT NULL,
    dims JSONB,
    value NUMERIC,
    unique_value TEXT,
    quantity_before NUMERIC NOT NULL,
    quantity_after NUMERIC NOT NULL,
    amount NUMERIC(38, 12) NOT NULL,
    wallet_id UUID,
    period_start TIMESTAMPTZ NOT NULL,
    entry_id UUID NOT NULL,
    PRIMARY KEY (event_id, meter_id, asset)
);
