-- TigerBeetle-style counters. One row per account, or one per shard for hot
-- accounts; an account's balance is the sum of its rows. The overdraft rule is
-- copied onto the row so the CHECK can enforce it without a join.
CREATE TABLE ledger_balances (
    account_id UUID NOT NULL,
    shard INT NOT NULL,
    normal TEXT NOT NULL CHECK (normal IN ('credit', 'debit')),
    no_overdraft BOOLEAN NOT NULL,
    debits_posted NUMERIC(38, 12) NOT NULL DEFAULT 0,
    credits_posted NUMERIC(38, 12) NOT NULL DEFAULT 0,
    debits_pending NUMERIC(38, 12) NOT NULL DEFAULT 0,
    credits_pending NUMERIC(38, 12) NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, shard),
    CONSTRAINT ledger_balances_nonnegative CHECK (
        debits_posted >= 0 AND credits_posted >= 0 AND debits_pending >= 0 AND credits_pending >= 0
    ),
    CONSTRAINT ledger_balances_no_overdraft CHECK (
        NOT no_overdraft
        OR (normal = 'credit' AND debits_posted + debits_pending <= credits_posted)
        OR (normal = 'debit' AND credits_posted + credits_pending <= debits_posted)
    )
);
