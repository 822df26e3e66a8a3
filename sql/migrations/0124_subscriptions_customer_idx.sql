-- Price resolution reads a batch's customers' subscriptions (any status) by
-- customer: without this, every batch scanned them all.
CREATE INDEX subscriptions_customer_idx ON subscriptions (customer_id);
