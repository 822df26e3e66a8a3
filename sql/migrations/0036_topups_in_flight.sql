-- At most one top-up in flight per wallet, whatever the code above thinks.
CREATE UNIQUE INDEX topups_in_flight ON topups (wallet_id) WHERE status = 'requested';
