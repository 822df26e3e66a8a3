CREATE INDEX usage_records_customer_idx ON usage_records (customer_id, meter_id, ts);
