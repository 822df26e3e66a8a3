-- Top-ups the auto top-up rule started. 'requested' is in flight: waiting
-- for the app's confirmation (payment confirm) or for the relay to credit
-- it (payment immediate).
CREATE TABLE topups (
    id UUID PRIMARY KEY,
    wallet_id UUID NOT NULL REFERENCES wallets (id),
    customer_id TEXT NOT NULL,
    asset TEXT NOT NULL,
    amount NUMERIC(38, 12) NOT NULL CHECK (amount > 0),
    kind TEXT NOT NULL,
    payment TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('requested', 'succeeded', 'failed')),
    available_at_request NUMERIC(38, 12) NOT NULL,
    grant_id UUID,
    invoice_id UUID,
    failure_reason TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ
);
