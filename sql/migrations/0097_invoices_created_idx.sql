-- GET /v1/invoices without customer_id lists every customer's invoices
-- newest first by (created_at, id): this index serves its pages.
CREATE INDEX invoices_created_idx ON invoices (created_at, id);
