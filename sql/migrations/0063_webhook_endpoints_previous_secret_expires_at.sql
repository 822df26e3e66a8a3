-- Until when previous_secret signs deliveries; NULL when there is none.
ALTER TABLE webhook_endpoints ADD COLUMN previous_secret_expires_at TIMESTAMPTZ;
