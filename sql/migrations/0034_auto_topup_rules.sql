-- A wallet's auto top-up rule (configuration only; the runtime state lives
-- in wallets.reactions so that configuring never races the poster).
CREATE TABLE auto_topup_rules (
    wallet_id UUID PRIMARY KEY REFERENCES wallets (id),
    enabled BOOL NOT NULL,
    threshold NUMERIC(38, 12) NOT NULL CHECK (threshold >= 0),
    amount NUMERIC(38, 12) CHECK (amount > 0),
    target_balance NUMERIC(38, 12) CHECK (target_balance > 0),
    kind TEXT NOT NULL CHECK (kind IN ('paid', 'promotional')),
    payment TEXT NOT NULL CHECK (payment IN ('confirm', 'immediate')),
    max_per_day INT CHECK (max_per_day > 0),
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT auto_topup_rules_size CHECK ((amount IS NULL) <> (target_balance IS NULL))
);
