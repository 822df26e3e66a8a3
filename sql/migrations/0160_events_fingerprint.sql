-- An applied event is its own idempotency record: the ledger keeps no
-- entry per event any more (events are summarized per batch and wallet),
-- so the event row holds the fingerprint a resend is compared with.
ALTER TABLE events ADD COLUMN fingerprint BYTEA;
