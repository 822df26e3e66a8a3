-- One invoice per wallet and billing cycle: the unique constraint makes a
-- cycle close exactly once.
CREATE TABLE invoices (
    id UUID PRIMARY KEY,
    wallet_id UUID NOT NULL REFERENCES wallets (id),
    customer_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    period_start TIMESTAMPTZ NOT NULL,
    period_end TIMESTAMPTZ NOT NULL,
    lines JSONB NOT NULL,
    subtotal NUMERIC(38, 12) NOT NULL,
    carried_in NUMERIC(38, 12) NOT NULL,
    total NUMERIC(38, 12) NOT NULL,
    carried_out NUMERIC(38, 12) NOT NULL,
    status TEXT NOT NULL,
    entry_id UUID NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT invoices_wallet_period UNIQUE (wallet_id, period_start)
);
