-- Events that can never apply, with the reason. They do not take the
-- event id: a corrected event with the same id can still be sent.
CREATE TABLE event_rejections (
    id UUID PRIMARY KEY,
    event_id TEXT,
    customer_id TEXT,
    source TEXT NOT NULL,
    code TEXT NOT NULL,
    detail TEXT NOT NULL,
    raw TEXT,
    received_at TIMESTAMPTZ NOT NULL
);
