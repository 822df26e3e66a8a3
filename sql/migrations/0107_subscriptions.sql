-- A customer's subscription to a plan. The current period is kept on the
-- row so the scheduler finds due periods with one index; phases (below)
-- say which plan applied when.
CREATE TABLE subscriptions (
    id UUID PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    plan_code TEXT NOT NULL REFERENCES plans (code),
    status TEXT NOT NULL CHECK (status IN ('active', 'canceled')),
    start_at TIMESTAMPTZ NOT NULL,
    current_period_start TIMESTAMPTZ NOT NULL,
    current_period_end TIMESTAMPTZ NOT NULL,
    cancel_at_period_end BOOLEAN NOT NULL DEFAULT false,
    next_plan_code TEXT REFERENCES plans (code),
    overage_limit NUMERIC(38, 12) CHECK (overage_limit >= 0),
    granted_period_start TIMESTAMPTZ,
    canceled_at TIMESTAMPTZ,
    ended_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL
);
