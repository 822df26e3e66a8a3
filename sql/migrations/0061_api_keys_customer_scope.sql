-- Which keys belong to a customer: a portal key always (it sees only that
-- customer's resources), an ingest key optionally (it may send only that
-- customer's events), admin and read keys never.
ALTER TABLE api_keys ADD CONSTRAINT api_keys_customer_scope CHECK (
    (scope = 'portal' AND customer_id IS NOT NULL)
    OR (scope IN ('admin', 'read') AND customer_id IS NULL)
    OR scope = 'ingest'
);
