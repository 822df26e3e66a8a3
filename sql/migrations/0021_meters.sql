-- Meters select usage events by name and property filters and aggregate a
-- property, optionally per group-by dimensions.
CREATE TABLE meters (
    id UUID PRIMARY KEY,
    code TEXT NOT NULL,
    event_name TEXT NOT NULL,
    aggregation TEXT NOT NULL CHECK (aggregation IN ('count', 'sum', 'max', 'unique_count', 'latest')),
    property TEXT,
    filters JSONB,
    group_by JSONB,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT meters_code UNIQUE (code)
);
