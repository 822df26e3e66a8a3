-- Usage the credits did not cover since the wallet's last invoice, summed
-- per priced meter and dimensions: the next invoice's usage lines.
CREATE TABLE overage_lines (
    wallet_id UUID NOT NULL,
    line_key TEXT NOT NULL,
    description TEXT NOT NULL,
    quantity NUMERIC NOT NULL,
    amount NUMERIC(38, 12) NOT NULL,
    unit_price NUMERIC(38, 12),
    PRIMARY KEY (wallet_id, line_key)
);
