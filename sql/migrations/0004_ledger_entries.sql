-- One row per operation the poster applied, accepted or rejected. The unique
-- idempotency key is the final word on "has this already happened".
CREATE TABLE ledger_entries (
    id UUID PRIMARY KEY,
    idempotency_key TEXT NOT NULL,
    fingerprint BYTEA NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('posted', 'rejected')),
    reject_code TEXT,
    reject_detail TEXT,
    owner_id UUID,
    description TEXT,
    metadata JSONB,
    result TEXT, -- the op's result, byte for byte, so a replay answers identically
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT ledger_entries_idempotency_key UNIQUE (idempotency_key)
);
