package main

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Names of ledgerd's poster metrics (api/metrics/metrics.go).
const (
	metricBatchSize     = "ledger_poster_batch_size"
	metricBatchCommit   = "ledger_poster_batch_commit_seconds"
	metricRetries       = "ledger_poster_retries_total"
	metricFailedBatches = "ledger_poster_failed_batches_total"
)

// bucket is one cumulative histogram bucket: Count observations ≤ UpperBound.
type bucket struct {
	UpperBound float64
	Count      float64
}

// histogram is a Prometheus histogram as scraped: cumulative buckets sorted
// by upper bound, the last one +Inf.
type histogram struct {
	Buckets    []bucket
	Sum, Count float64
	// Floor is the smallest value an observation can have, the lower edge
	// of the first bucket for quantile estimates: 0 for durations, 1 for
	// batch sizes (a batch of 0.8 ops would be nonsense).
	Floor float64
}

// metricsSnapshot is the part of one /metrics scrape the report uses.
type metricsSnapshot struct {
	BatchSize     histogram
	BatchCommit   histogram
	Retries       float64
	FailedBatches float64
}

// parseSnapshot reads ledgerd's /metrics text.
func parseSnapshot(text []byte) (metricsSnapshot, error) {
	var s metricsSnapshot
	var err error
	if s.BatchSize, err = parseHistogram(text, metricBatchSize); err != nil {
		return s, err
	}
	s.BatchSize.Floor = 1
	if s.BatchCommit, err = parseHistogram(text, metricBatchCommit); err != nil {
		return s, err
	}
	// Counters are absent only if ledgerd stopped registering them; zero
	// is the right reading for a delta then.
	s.Retries, _ = parseSample(text, metricRetries)
	s.FailedBatches, _ = parseSample(text, metricFailedBatches)
	return s, nil
}

// sub is the snapshot's change since prev.
func (s metricsSnapshot) sub(prev metricsSnapshot) metricsSnapshot {
	return metricsSnapshot{
		BatchSize:     s.BatchSize.sub(prev.BatchSize),
		BatchCommit:   s.BatchCommit.sub(prev.BatchCommit),
		Retries:       s.Retries - prev.Retries,
		FailedBatches: s.FailedBatches - prev.FailedBatches,
	}
}

// parseHistogram finds the unlabelled histogram name in the Prometheus text
// format. A small parser rather than prometheus/common/expfmt: it needs three
// line shapes, and keeps the harness off an indirect dependency.
func parseHistogram(text []byte, name string) (histogram, error) {
	var h histogram
	var haveSum, haveCount bool
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || !strings.HasPrefix(line, name+"_") {
			continue
		}
		key, val, ok := splitSample(line)
		if !ok {
			return h, fmt.Errorf("metrics: malformed line %q", line)
		}
		switch {
		case key == name+"_sum":
			h.Sum, haveSum = val, true
		case key == name+"_count":
			h.Count, haveCount = val, true
		case strings.HasPrefix(key, name+`_bucket{le="`) && strings.HasSuffix(key, `"}`):
			le := strings.TrimSuffix(strings.TrimPrefix(key, name+`_bucket{le="`), `"}`)
			ub, err := strconv.ParseFloat(le, 64) // accepts "+Inf"
			if err != nil {
				return h, fmt.Errorf("metrics: %s bucket le=%q: %w", name, le, err)
			}
			h.Buckets = append(h.Buckets, bucket{UpperBound: ub, Count: val})
		}
	}
	if err := sc.Err(); err != nil {
		return h, fmt.Errorf("metrics: %w", err)
	}
	if len(h.Buckets) == 0 || !haveSum || !haveCount {
		return h, fmt.Errorf("metrics: histogram %s not found", name)
	}
	slices.SortFunc(h.Buckets, func(a, b bucket) int { return cmp.Compare(a.UpperBound, b.UpperBound) })
	if !math.IsInf(h.Buckets[len(h.Buckets)-1].UpperBound, 1) {
		return h, fmt.Errorf("metrics: histogram %s has no +Inf bucket", name)
	}
	return h, nil
}

// parseSample finds the value of an unlabelled sample.
func parseSample(text []byte, name string) (float64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if key, val, ok := splitSample(sc.Text()); ok && key == name {
			return val, true
		}
	}
	return 0, false
}

// splitSample splits `name{labels} value [timestamp]`. Label values in the
// lines it is used on contain no spaces.
func splitSample(line string) (string, float64, bool) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return "", 0, false
	}
	v, err := strconv.ParseFloat(f[1], 64)
	if err != nil {
		return "", 0, false
	}
	return f[0], v, true
}

// sub is h minus an earlier scrape of the same histogram: what was observed
// in between. A prev with other buckets (or none: ledgerd restarted, so its
// counters restarted) is treated as empty.
func (h histogram) sub(prev histogram) histogram {
	whole := histogram{Sum: h.Sum, Count: h.Count, Buckets: slices.Clone(h.Buckets), Floor: h.Floor}
	out := histogram{Sum: h.Sum - prev.Sum, Count: h.Count - prev.Count, Buckets: slices.Clone(h.Buckets), Floor: h.Floor}
	if len(prev.Buckets) != len(h.Buckets) || out.Count < 0 {
		return whole
	}
	for i := range out.Buckets {
		if prev.Buckets[i].UpperBound != h.Buckets[i].UpperBound {
			return whole
		}
		out.Buckets[i].Count -= prev.Buckets[i].Count
	}
	return out
}

// quantile estimates the q-quantile (0..1) the way PromQL's
// histogram_quantile does: find the bucket holding rank q×count and
// interpolate linearly inside it, the first bucket starting at Floor; a
// rank in the +Inf bucket gives the highest finite bound. NaN when h is
// empty.
func (h histogram) quantile(q float64) float64 {
	if len(h.Buckets) == 0 {
		return math.NaN()
	}
	total := h.Buckets[len(h.Buckets)-1].Count
	if total <= 0 {
		return math.NaN()
	}
	rank := q * total
	for i, b := range h.Buckets {
		if b.Count < rank {
			continue
		}
		if math.IsInf(b.UpperBound, 1) {
			if i == 0 {
				return math.NaN()
			}
			return h.Buckets[i-1].UpperBound
		}
		lower, below := h.Floor, 0.0
		if i > 0 {
			lower, below = h.Buckets[i-1].UpperBound, h.Buckets[i-1].Count
		}
		if b.Count == below || lower >= b.UpperBound {
			return b.UpperBound
		}
		return lower + (b.UpperBound-lower)*(rank-below)/(b.Count-below)
	}
	return h.Buckets[len(h.Buckets)-1].UpperBound
}

// aboveTop reports whether the q-quantile lies in the +Inf bucket, so that
// quantile's answer (the highest finite bound) is only a lower bound.
func (h histogram) aboveTop(q float64) bool {
	n := len(h.Buckets)
	if n < 2 || h.Buckets[n-1].Count <= 0 {
		return false
	}
	return h.Buckets[n-2].Count < q*h.Buckets[n-1].Count
}

// mean is sum/count: exact, unlike the bucket estimates. NaN when empty.
func (h histogram) mean() float64 {
	if h.Count <= 0 {
		return math.NaN()
	}
	return h.Sum / h.Count
}
