CREATE INDEX event_rejections_received_idx ON event_rejections (received_at DESC, id DESC);
