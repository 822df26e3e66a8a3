CREATE INDEX invoices_customer_idx ON invoices (customer_id, created_at);
