CREATE INDEX subscriptions_due_idx ON subscriptions (current_period_end) WHERE status = 'active';
