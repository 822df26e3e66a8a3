-- Accounts are the chart of accounts. Balances live in ledger_balances so that a
-- hot system account can be split into several counter rows (shards).
CREATE TABLE ledger_accounts (
    id UUID PRIMARY KEY,
    code TEXT NOT NULL,
    asset TEXT NOT NULL,
    owner_id UUID,
    normal TEXT NOT NULL CHECK (normal IN ('credit', 'debit')),
    no_overdraft BOOLEAN NOT NULL DEFAULT false,
    shards INT NOT NULL DEFAULT 1 CHECK (shards BETWEEN 1 AND 256),
    metadata JSONB,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT ledger_accounts_code_asset UNIQUE (code, asset),
    CONSTRAINT ledger_accounts_hot_overdraft CHECK (shards = 1 OR NOT no_overdraft)
);
