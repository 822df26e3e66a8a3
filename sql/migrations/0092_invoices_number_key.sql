-- An invoice number is issued once. A unique index allows many NULLs (the
-- invoices from before numbers) on PostgreSQL and CockroachDB alike.
CREATE UNIQUE INDEX invoices_number_key ON invoices (number);
