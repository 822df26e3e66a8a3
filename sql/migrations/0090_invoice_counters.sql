-- The last invoice number issued per number prefix (the prefix is derived
-- from the customer id, see billing/number.go). Customers whose ids map to
-- one prefix share its sequence, so numbers stay unique and each
-- customer's still increase. A batch locks the rows it needs FOR UPDATE in
-- prefix order while loading and writes them back when it flushes.
CREATE TABLE invoice_counters (
    prefix TEXT PRIMARY KEY,
    last_number BIGINT NOT NULL CHECK (last_number >= 0)
);
