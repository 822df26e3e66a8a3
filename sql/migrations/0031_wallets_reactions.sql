-- What the wallet's reactions remember between batches: the alert reference
-- and which thresholds fired for it, the depleted and overage flags, and the
-- auto top-up's in-flight request, daily count and backoff. Written only by
-- the poster, in the transaction that changed the balance.
ALTER TABLE wallets ADD COLUMN reactions JSONB;
