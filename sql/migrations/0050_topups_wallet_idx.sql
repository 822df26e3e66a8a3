CREATE INDEX topups_wallet_idx ON topups (wallet_id, created_at);
