-- A version is in force from effective_at until the next one's; its prices
-- are in prices under scope 'plan:<id>'. Versions only ever append.
CREATE TABLE plan_versions (
    id UUID PRIMARY KEY,
    plan_code TEXT NOT NULL REFERENCES plans (code),
    version INT NOT NULL CHECK (version >= 1),
    effective_at TIMESTAMPTZ NOT NULL,
    base_fee NUMERIC(38, 12) NOT NULL CHECK (base_fee >= 0),
    minimum_commitment NUMERIC(38, 12) NOT NULL CHECK (minimum_commitment >= 0),
    included_credits JSONB NOT NULL,
    overage_policy TEXT NOT NULL CHECK (overage_policy IN ('allow', 'block')),
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT plan_versions_number UNIQUE (plan_code, version),
    CONSTRAINT plan_versions_effective UNIQUE (plan_code, effective_at)
);
