-- One wallet per customer and asset; its id owns its ledger accounts.
CREATE TABLE wallets (
    id UUID PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    asset TEXT NOT NULL,
    overage_policy TEXT NOT NULL CHECK (overage_policy IN ('block', 'allow')),
    overage_limit NUMERIC(38, 12) CHECK (overage_limit >= 0),
    alert_thresholds JSONB NOT NULL,
    overage_account_id UUID NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT wallets_customer_asset UNIQUE (customer_id, asset)
);
