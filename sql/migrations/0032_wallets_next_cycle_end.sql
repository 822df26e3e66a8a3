-- End of the wallet's open billing cycle: the scheduler closes cycles whose
-- end has passed.
ALTER TABLE wallets ADD COLUMN next_cycle_end TIMESTAMPTZ;
