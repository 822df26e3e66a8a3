-- A subscription's period is invoiced once.
CREATE UNIQUE INDEX invoices_subscription_period ON invoices (subscription_id, period_start);
