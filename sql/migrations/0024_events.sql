-- Every applied usage event, for audit. The primary key is the guarantee
-- that an event counts once, whatever the broker or the client does.
CREATE TABLE events (
    event_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    event_name TEXT NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    properties JSONB,
    source TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    entry_id UUID NOT NULL
);
