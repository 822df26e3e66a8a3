-- Credit blocks. The money is in the grant's ledger account (grant:<id>);
-- this row carries what burn-down order, expiry and reporting need.
CREATE TABLE grants (
    id UUID PRIMARY KEY,
    wallet_id UUID NOT NULL REFERENCES wallets (id),
    account_id UUID NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('paid', 'promotional')),
    amount NUMERIC(38, 12) NOT NULL CHECK (amount > 0),
    priority INT NOT NULL,
    effective_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    cost_basis NUMERIC(38, 12),
    description TEXT,
    metadata JSONB,
    status TEXT NOT NULL CHECK (status IN ('active', 'voided', 'expired')),
    expired_amount NUMERIC(38, 12) NOT NULL DEFAULT 0,
    voided_amount NUMERIC(38, 12) NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL,
    voided_at TIMESTAMPTZ,
    expired_at TIMESTAMPTZ,
    CONSTRAINT grants_window CHECK (expires_at IS NULL OR expires_at > effective_at)
);
