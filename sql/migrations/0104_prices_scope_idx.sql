-- A plan's or a subscription's prices are read by scope.
CREATE INDEX prices_scope_idx ON prices (scope, meter_id);
