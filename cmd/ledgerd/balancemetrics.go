package main

import "github.com/prometheus/client_golang/prometheus"

// balanceReads counts balance reads by whether the cache answered them
// (wallet.BalanceCacheObserver), as ledger_balance_cache_reads_total.
type balanceReads struct{ hit, miss prometheus.Counter }

func newBalanceReads(reg prometheus.Registerer) (*balanceReads, error) {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "ledger", Subsystem: "balance_cache", Name: "reads_total",
		Help: "Balance reads without `at`, by whether memory answered them (hit) or the database (miss).",
	}, []string{"result"})
	if err := reg.Register(v); err != nil {
		return nil, err
	}
	return &balanceReads{hit: v.WithLabelValues("hit"), miss: v.WithLabelValues("miss")}, nil
}

func (r *balanceReads) BalanceCacheHit()  { r.hit.Inc() }
func (r *balanceReads) BalanceCacheMiss() { r.miss.Inc() }
