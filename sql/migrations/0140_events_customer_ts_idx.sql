-- GET /v1/events?customer_id=: a customer's events newest first, paged by
-- (ts, event_id), read straight off the index (autovacuum is off, so a
-- sort over the table would only get slower).
CREATE INDEX events_customer_ts_idx ON events (customer_id, ts DESC, event_id DESC);
