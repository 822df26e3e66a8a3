CREATE INDEX grants_wallet_idx ON grants (wallet_id, created_at);
