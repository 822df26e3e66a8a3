-- A plan's included credits are grants of a subscription. Their kind is
-- stored as promotional (the kind CHECK predates them and a CHECK cannot be
-- dropped by one name on both engines) and read back as included.
ALTER TABLE grants ADD COLUMN subscription_id UUID;
