CREATE INDEX ledger_accounts_owner_idx ON ledger_accounts (owner_id);
