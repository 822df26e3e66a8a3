-- A rejection is recorded once per event however often it is sent again
-- (a NATS redelivery, a client's retry of the whole batch): the key is a
-- hash of the source, the code, the customer and the raw event. Rows from
-- before have none (NULLs do not collide in a unique index).
ALTER TABLE event_rejections ADD COLUMN dedupe_key TEXT;
