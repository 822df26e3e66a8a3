-- The customer portal lists the alerts fired for a customer's wallets: the
-- outbox rows they own, newest first.
CREATE INDEX outbox_owner_idx ON outbox (owner_id, created_at DESC);
