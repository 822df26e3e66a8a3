package main

import (
	"math"
	"time"
)

// result is one row of the report.
type result struct {
	Scenario string          `json:"scenario"` // "1".."6", "5-ingest", "1/6", "rss"
	Name     string          `json:"name"`
	Unit     string          `json:"unit,omitempty"` // events/s, debits/s, reads/s
	Planned  int             `json:"planned,omitempty"`
	Done     int             `json:"done,omitempty"` // events applied, debits or reads answered
	Seconds  float64         `json:"seconds,omitempty"`
	Rate     float64         `json:"rate,omitempty"`
	Latency  *latencySummary `json:"latency,omitempty"` // where a caller waits
	Poster   *posterStats    `json:"poster,omitempty"`
	Work     *pgWork         `json:"pg_work,omitempty"` // the database's work per event or debit
	PeakRSS  int64           `json:"peak_rss_bytes,omitempty"`
	Errors   int             `json:"errors"`
	// Complete is false when the scenario's time bound ended it before
	// everything it sent was applied.
	Complete bool         `json:"complete"`
	Checks   *checkResult `json:"checks,omitempty"`
	Target   string       `json:"target,omitempty"`
	Met      *bool        `json:"met,omitempty"`
	Notes    []string     `json:"notes,omitempty"`
}

// posterStats is the poster's histograms over one scenario: bucket
// estimates of p50/p99, and the exact means from _sum/_count.
type posterStats struct {
	Batches       int     `json:"batches"`
	BatchP50      float64 `json:"batch_p50"`
	BatchP99      float64 `json:"batch_p99"`
	BatchMean     float64 `json:"batch_mean"`
	CommitP50Ms   float64 `json:"commit_p50_ms"`
	CommitP99Ms   float64 `json:"commit_p99_ms"`
	CommitMeanMs  float64 `json:"commit_mean_ms"`
	Retries       float64 `json:"retries"`
	FailedBatches float64 `json:"failed_batches"`
	// Above are the estimates that fell in the +Inf bucket: the true
	// value is more than the one given (the highest finite bound).
	Above []string `json:"above_top_bucket,omitempty"`
}

func newPosterStats(d metricsSnapshot) *posterStats {
	p := &posterStats{
		Batches:  int(d.BatchSize.Count),
		BatchP50: d.BatchSize.quantile(0.50), BatchP99: d.BatchSize.quantile(0.99), BatchMean: d.BatchSize.mean(),
		CommitP50Ms: 1000 * d.BatchCommit.quantile(0.50), CommitP99Ms: 1000 * d.BatchCommit.quantile(0.99),
		CommitMeanMs: 1000 * d.BatchCommit.mean(),
		Retries:      d.Retries, FailedBatches: d.FailedBatches,
	}
	for _, a := range []struct {
		name string
		h    histogram
		q    float64
	}{{"batch_p50", d.BatchSize, 0.5}, {"batch_p99", d.BatchSize, 0.99},
		{"commit_p50_ms", d.BatchCommit, 0.5}, {"commit_p99_ms", d.BatchCommit, 0.99}} {
		if a.h.aboveTop(a.q) {
			p.Above = append(p.Above, a.name)
		}
	}
	p.nanToZero()
	return p
}

// checkResult is the correctness check after a scenario.
type checkResult struct {
	Wallets    int      `json:"wallets"`    // balances compared
	Mismatches int      `json:"mismatches"` // of those, wrong
	Examples   []string `json:"examples,omitempty"`
	Uncertain  int      `json:"uncertain,omitempty"` // not compared: a request's outcome is unknown
	Skipped    string   `json:"skipped,omitempty"`   // why the balances were not compared at all
	VerifyOK   bool     `json:"verify_ok"`
	Verify     string   `json:"verify"` // what ledger.Verify checked, or its violations
	Seconds    float64  `json:"seconds"`
}

func (c *checkResult) ok() bool {
	return c != nil && c.VerifyOK && c.Mismatches == 0 && c.Skipped == ""
}

// rate is n per second of d; 0 for an empty interval.
func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func boolPtr(b bool) *bool { return &b }

// nanToZero keeps NaN (an empty histogram) out of JSON, which cannot hold it.
func (p *posterStats) nanToZero() {
	for _, f := range []*float64{&p.BatchP50, &p.BatchP99, &p.BatchMean, &p.CommitP50Ms, &p.CommitP99Ms, &p.CommitMeanMs} {
		if math.IsNaN(*f) {
			*f = 0
		}
	}
}
