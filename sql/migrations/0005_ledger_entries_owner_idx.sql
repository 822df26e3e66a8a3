CREATE INDEX ledger_entries_owner_idx ON ledger_entries (owner_id, created_at DESC, id DESC);
