-- Webhook endpoints. The secret is a signing key, not a password: it is
-- stored as issued ("whsec_" + base64), because every delivery is signed
-- with it. event_types empty means every event type. An endpoint is never
-- deleted outright (deleted_at), so its delivery log keeps its meaning.
-- leased_until and lease belong to the dispatcher: the endpoint row is the
-- mutex that keeps one endpoint's deliveries sequential across processes,
-- and lease is the fencing counter of that mutex.
CREATE TABLE webhook_endpoints (
    id UUID PRIMARY KEY,
    url TEXT NOT NULL,
    event_types TEXT[] NOT NULL,
    secret TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    deleted_at TIMESTAMPTZ,
    disabled_at TIMESTAMPTZ,
    disabled_reason TEXT,
    failing_since TIMESTAMPTZ,
    leased_until TIMESTAMPTZ NOT NULL,
    lease BIGINT NOT NULL DEFAULT 0
);
