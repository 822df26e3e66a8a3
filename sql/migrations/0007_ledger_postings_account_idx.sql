CREATE INDEX ledger_postings_account_idx ON ledger_postings (account_id, created_at);
