-- When the invoice was voided (status void).
ALTER TABLE invoices ADD COLUMN voided_at TIMESTAMPTZ;
