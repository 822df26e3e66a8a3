-- A plan is a versioned price book with fees and included credits, sold in
-- one currency on one interval; both are fixed for all its versions.
CREATE TABLE plans (
    code TEXT PRIMARY KEY,
    name TEXT,
    currency TEXT NOT NULL,
    billing_interval TEXT NOT NULL CHECK (billing_interval IN ('month', 'week', 'year')),
    archived_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL
);
