-- The secret an endpoint had before its latest rotation, still signing
-- deliveries (beside the new one) until previous_secret_expires_at, so a
-- receiver can switch secrets without dropping a webhook. Like secret, it
-- is stored as issued or, when the server has an encryption key, sealed
-- ("enc:v1:…", see internal/secretbox) with the endpoint id as additional
-- data.
ALTER TABLE webhook_endpoints ADD COLUMN previous_secret TEXT;
