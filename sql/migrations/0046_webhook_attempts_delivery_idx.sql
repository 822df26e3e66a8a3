CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, attempted_at, id);
