-- Lists endpoints newest first.
CREATE INDEX webhook_endpoints_created_idx ON webhook_endpoints (created_at, id);
