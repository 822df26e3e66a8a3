-- A posting moves amount on one side of one account. Posted amounts are
-- positive; pending amounts are positive when a hold reserves and negative
-- when it is released (captured or voided).
CREATE TABLE ledger_postings (
    entry_id UUID NOT NULL,
    seq INT NOT NULL,
    account_id UUID NOT NULL,
    shard INT NOT NULL,
    asset TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('debit', 'credit')),
    pending BOOLEAN NOT NULL,
    amount NUMERIC(38, 12) NOT NULL,
    hold_id UUID,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (entry_id, seq),
    CONSTRAINT ledger_postings_amount CHECK (amount <> 0 AND (pending OR amount > 0))
);
