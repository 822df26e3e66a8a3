package main

import (
	"math"
	"slices"
	"time"
)

// latencySummary is what a table row needs of a set of latencies, in
// milliseconds (floats are fine here: these are durations, not money).
type latencySummary struct {
	N     int     `json:"n"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

// percentile is the nearest-rank percentile (p in [0,100]) of sorted
// durations: the smallest sample with at least p% of the samples at or below
// it. Nearest rank never invents a value between two samples, so a p99 of 200
// samples is an actual call's latency. Zero when there are no samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// summarize sorts ds in place and summarizes it.
func summarize(ds []time.Duration) latencySummary {
	slices.Sort(ds)
	s := latencySummary{N: len(ds)}
	if len(ds) == 0 {
		return s
	}
	s.P50Ms = ms(percentile(ds, 50))
	s.P99Ms = ms(percentile(ds, 99))
	s.MaxMs = ms(ds[len(ds)-1])
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
