-- GET /v1/events without a customer: every event newest first, paged by
-- (ts, event_id).
CREATE INDEX events_ts_idx ON events (ts DESC, event_id DESC);
