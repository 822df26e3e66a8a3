-- At most one active subscription per customer: the database has the last
-- word when two requests race.
CREATE UNIQUE INDEX subscriptions_one_active ON subscriptions (customer_id) WHERE status = 'active';
