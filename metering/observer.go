package metering

// Observer is told what ingestion does, for metrics. metering knows nothing
// of Prometheus; api/metrics implements this.
type Observer interface {
	// Ingested reports the outcome of each event of one ingest call.
	Ingested(source string, results []EventResult)
	// Parked reports events set aside after too many failed deliveries.
	Parked(source string, n int)
}

// NopObserver ignores everything.
type NopObserver struct{}

func (NopObserver) Ingested(string, []EventResult) {}
func (NopObserver) Parked(string, int)             {}
