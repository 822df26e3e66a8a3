package ledger

import "time"

// Observer is told what the poster does, for metrics. The ledger knows
// nothing of Prometheus; api/metrics implements this.
type Observer interface {
	// BatchCommitted reports one committed batch: how many operations it
	// carried, how long the whole transaction took (all attempts) and how
	// many attempts were retried.
	BatchCommitted(shard, ops int, took time.Duration, retries int)
	// BatchFailed reports a batch whose transaction failed for good.
	BatchFailed(shard, ops int, err error)
	// OpRefused reports an operation the database refused, found by
	// splitting its batch and refused alone with code.
	OpRefused(shard int, code string)
}

// NopObserver ignores everything.
type NopObserver struct{}

func (NopObserver) BatchCommitted(int, int, time.Duration, int) {}
func (NopObserver) BatchFailed(int, int, error)                 {}
func (NopObserver) OpRefused(int, string)                       {}
