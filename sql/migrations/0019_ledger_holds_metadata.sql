ALTER TABLE ledger_holds ADD COLUMN metadata JSONB;
