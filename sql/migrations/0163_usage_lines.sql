-- Every meter's count of every event, wherever it is stored: the usage
-- records of events several meters count, and the one line folded into the
-- event row otherwise. Reports, the events audit and verify read this.
CREATE VIEW usage_lines AS
    SELECT event_id, meter_id, asset, customer_id, ts, dims_key, dims, value, unique_value,
        quantity_before, quantity_after, amount, wallet_id, period_start, entry_id, overage
    FROM usage_records
    UNION ALL
    SELECT event_id, meter_id, asset, customer_id, ts, dims_key, dims, value, unique_value,
        quantity_before, quantity_after, amount, wallet_id, period_start, entry_id, overage
    FROM events WHERE meter_id IS NOT NULL;
