-- A subscription's invoice covers all the customer's wallets: it has none.
ALTER TABLE invoices ALTER COLUMN wallet_id DROP NOT NULL;
