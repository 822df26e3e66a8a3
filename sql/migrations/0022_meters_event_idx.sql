CREATE INDEX meters_event_idx ON meters (event_name);
