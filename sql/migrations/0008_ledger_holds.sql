-- A hold is a pending transfer: its legs reserve amounts on pending counters
-- until it is captured (in full or in part), voided or expires.
CREATE TABLE ledger_holds (
    id UUID PRIMARY KEY,
    owner_id UUID,
    entry_id UUID NOT NULL,
    asset TEXT NOT NULL,
    amount NUMERIC(38, 12) NOT NULL CHECK (amount > 0),
    captured NUMERIC(38, 12) NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('pending', 'captured', 'voided', 'expired')),
    legs JSONB NOT NULL,
    expires_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    closed_at TIMESTAMPTZ,
    closed_by UUID
);
