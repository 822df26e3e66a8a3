-- Failed deliveries, counted on every /metrics scrape (ledger_webhook_deliveries{status="failed"})
-- without reading the whole delivery log.
CREATE INDEX webhook_deliveries_failed_idx ON webhook_deliveries (created_at) WHERE status = 'failed';
