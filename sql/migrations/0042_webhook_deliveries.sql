-- One event for one endpoint. body is the exact bytes every attempt sends
-- (TEXT, not JSONB, so they never change); event_id is the outbox message
-- id and the webhook-id header. failures counts the failed attempts since
-- the delivery last became pending and indexes the retry schedule; attempts
-- counts them all. claim is bumped by every claim, resend and delete, and a
-- dispatcher records an outcome only while it still matches the claim it
-- took (fencing).
CREATE TABLE webhook_deliveries (
    id UUID PRIMARY KEY,
    endpoint_id UUID NOT NULL REFERENCES webhook_endpoints (id),
    event_id UUID NOT NULL,
    event_type TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts INT NOT NULL DEFAULT 0,
    failures INT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ,
    claim BIGINT NOT NULL DEFAULT 0,
    last_attempt_at TIMESTAMPTZ,
    last_status_code INT,
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT webhook_deliveries_event UNIQUE (endpoint_id, event_id),
    CONSTRAINT webhook_deliveries_pending_due CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);
