-- Where a grant's money came from when that is not the funding account of
-- its kind: a usage credit-back (volume pricing) is funded by revenue, and a
-- void or expiry must send its remainder back there.
ALTER TABLE grants ADD COLUMN funding_account_id UUID;
