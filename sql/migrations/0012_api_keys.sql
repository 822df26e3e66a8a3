-- API keys. Only a SHA-256 of each key's secret is stored; key_id is the
-- short, non-secret part of a key that finds its row. A portal token is the
-- one kind of key bound to a customer, and it must be.
CREATE TABLE api_keys (
    id UUID PRIMARY KEY,
    key_id TEXT NOT NULL,
    secret_hash BYTEA NOT NULL,
    scope TEXT NOT NULL CHECK (scope IN ('admin', 'ingest', 'read', 'portal')),
    customer_id TEXT,
    name TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    CONSTRAINT api_keys_key_id UNIQUE (key_id),
    CONSTRAINT api_keys_portal_customer CHECK ((scope = 'portal') = (customer_id IS NOT NULL))
);
