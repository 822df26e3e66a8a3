CREATE INDEX outbox_pending_idx ON outbox (available_at) WHERE processed_at IS NULL;
