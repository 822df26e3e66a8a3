-- A phase is a stretch of a subscription on one plan: periods run from its
-- anchor every interval, the last one cut at the phase's end. A change of
-- plan ends a phase and starts the next.
CREATE TABLE subscription_phases (
    subscription_id UUID NOT NULL REFERENCES subscriptions (id),
    seq INT NOT NULL,
    plan_code TEXT NOT NULL REFERENCES plans (code),
    start_at TIMESTAMPTZ NOT NULL,
    end_at TIMESTAMPTZ,
    PRIMARY KEY (subscription_id, seq)
);
