-- Customers under the app's own ids.
CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    name TEXT,
    email TEXT,
    metadata JSONB,
    created_at TIMESTAMPTZ NOT NULL
);
