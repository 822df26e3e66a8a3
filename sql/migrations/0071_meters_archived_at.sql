-- When the meter was archived: from then on it counts no new events (the
-- metering stage loads only meters without it). NULL while it is active.
ALTER TABLE meters ADD COLUMN archived_at TIMESTAMPTZ;
