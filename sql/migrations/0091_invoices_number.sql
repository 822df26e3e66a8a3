-- The invoice's number, e.g. ACME-0003. NULL on invoices issued before
-- numbers existed: they were sent without one, and a number given later
-- would make the stored invoice differ from the document the customer got.
ALTER TABLE invoices ADD COLUMN number TEXT;
