-- When the invoice was marked paid (status paid).
ALTER TABLE invoices ADD COLUMN paid_at TIMESTAMPTZ;
