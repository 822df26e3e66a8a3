-- Why the invoice was voided, as the caller gave it; NULL when none was.
ALTER TABLE invoices ADD COLUMN void_reason TEXT;
