CREATE UNIQUE INDEX event_rejections_dedupe_idx ON event_rejections (dedupe_key);
