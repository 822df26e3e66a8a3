CREATE INDEX grants_expiry_idx ON grants (expires_at) WHERE status = 'active';
