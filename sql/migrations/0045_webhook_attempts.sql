-- Every HTTP attempt of a delivery, kept across resends. status_code is
-- null when no response came (timeout, refused connection, blocked address).
CREATE TABLE webhook_attempts (
    id UUID PRIMARY KEY,
    delivery_id UUID NOT NULL REFERENCES webhook_deliveries (id),
    attempted_at TIMESTAMPTZ NOT NULL,
    status_code INT,
    error TEXT,
    duration_ms INT NOT NULL
);
