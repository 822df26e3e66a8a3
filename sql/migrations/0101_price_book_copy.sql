-- Prices made before the book existed were in force for every event, so
-- they are in force from the beginning (the epoch stands for it).
INSERT INTO price_book (id, meter_id, asset, spec, dimensions_key, scope, effective_at, created_at)
SELECT id, meter_id, asset, spec, dimensions_key, '', TIMESTAMPTZ '1970-01-01 00:00:00+00', created_at FROM prices;
