-- What one meter did with the event, on the event row itself: an event
-- that one meter counts in one asset (nearly all) writes one row, not an
-- event and a usage record. Events that several meters or assets count
-- keep their usage_records rows, and these columns stay NULL.
ALTER TABLE events
    ADD COLUMN meter_id UUID,
    ADD COLUMN asset TEXT,
    ADD COLUMN dims_key TEXT,
    ADD COLUMN dims JSONB,
    ADD COLUMN value NUMERIC,
    ADD COLUMN unique_value TEXT,
    ADD COLUMN quantity_before NUMERIC,
    ADD COLUMN quantity_after NUMERIC,
    ADD COLUMN amount NUMERIC(38, 12),
    ADD COLUMN overage NUMERIC(38, 12),
    ADD COLUMN wallet_id UUID,
    ADD COLUMN period_start TIMESTAMPTZ;
