CREATE INDEX wallets_next_cycle_end_idx ON wallets (next_cycle_end);
