-- Ingest keys may now be bound to one customer too (0061 states the new
-- rule); the old rule allowed a customer on portal keys only.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_portal_customer;
