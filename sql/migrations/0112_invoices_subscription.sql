ALTER TABLE invoices ADD COLUMN subscription_id UUID REFERENCES subscriptions (id);
