-- The payment's reference as the caller gave it when marking the invoice
-- paid (a bank transfer id, a PSP charge id); NULL when none was given.
ALTER TABLE invoices ADD COLUMN payment_reference TEXT;
