-- Events applied before 0160 had their key and fingerprint in the journal.
UPDATE events SET fingerprint = e.fingerprint
FROM ledger_entries e
WHERE e.idempotency_key = 'event:' || events.event_id AND events.fingerprint IS NULL;
