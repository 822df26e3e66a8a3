package main

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// scrape is a /metrics excerpt in the shape ledgerd serves.
func scrape(batchBuckets map[string]int, count, sum float64) string {
	var b strings.Builder
	b.WriteString("# HELP ledger_poster_batch_size Operations per committed poster batch.\n")
	b.WriteString("# TYPE ledger_poster_batch_size histogram\n")
	for _, le := range []string{"1", "2", "5", "10", "20", "50", "100", "200", "500", "1000", "2000", "+Inf"} {
		b.WriteString(`ledger_poster_batch_size_bucket{le="` + le + `"} ` + ftoa(float64(batchBuckets[le])) + "\n")
	}
	b.WriteString("ledger_poster_batch_size_sum " + ftoa(sum) + "\n")
	b.WriteString("ledger_poster_batch_size_count " + ftoa(count) + "\n")
	b.WriteString(`ledger_poster_batch_commit_seconds_bucket{le="0.01"} 1` + "\n")
	b.WriteString(`ledger_poster_batch_commit_seconds_bucket{le="0.1"} 3` + "\n")
	b.WriteString(`ledger_poster_batch_commit_seconds_bucket{le="+Inf"} 4` + "\n")
	b.WriteString("ledger_poster_batch_commit_seconds_sum 0.5\nledger_poster_batch_commit_seconds_count 4\n")
	b.WriteString("ledger_poster_retries_total 7\nledger_poster_failed_batches_total 0\n")
	b.WriteString(`ledger_poster_operations_total{shard="0"} 12` + "\n")
	return b.String()
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func TestParseSnapshot(t *testing.T) {
	text := scrape(map[string]int{"1": 1, "2": 1, "5": 1, "10": 1, "20": 1, "50": 1, "100": 1, "200": 1, "500": 2, "1000": 5, "2000": 5, "+Inf": 5}, 5, 2100)
	s, err := parseSnapshot([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(s.BatchSize.Buckets); got != 12 {
		t.Fatalf("batch size buckets = %d, want 12", got)
	}
	if last := s.BatchSize.Buckets[11]; !math.IsInf(last.UpperBound, 1) || last.Count != 5 {
		t.Errorf("last bucket = %+v, want +Inf with 5", last)
	}
	if s.BatchSize.Count != 5 || s.BatchSize.Sum != 2100 || s.BatchSize.Floor != 1 {
		t.Errorf("batch size count/sum/floor = %g/%g/%g, want 5/2100/1", s.BatchSize.Count, s.BatchSize.Sum, s.BatchSize.Floor)
	}
	if s.BatchCommit.Count != 4 || len(s.BatchCommit.Buckets) != 3 {
		t.Errorf("commit histogram = %+v", s.BatchCommit)
	}
	if s.Retries != 7 {
		t.Errorf("retries = %g, want 7", s.Retries)
	}
}

func TestParseHistogramErrors(t *testing.T) {
	for name, text := range map[string]string{
		"absent":       "ledger_poster_retries_total 1\n",
		"no +Inf":      "h_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
		"no count":     "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\n",
		"bad value":    "h_bucket{le=\"1\"} x\nh_sum 1\nh_count 1\n",
		"bad le":       "h_bucket{le=\"one\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
		"missing name": "",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parseHistogram([]byte(text), "h"); err == nil {
				t.Errorf("parseHistogram(%q) succeeded, want an error", text)
			}
		})
	}
}

func hist(floor float64, bounds []float64, counts []float64) histogram {
	h := histogram{Floor: floor}
	for i := range bounds {
		h.Buckets = append(h.Buckets, bucket{UpperBound: bounds[i], Count: counts[i]})
	}
	h.Count = counts[len(counts)-1]
	return h
}

func TestHistogramQuantile(t *testing.T) {
	inf := math.Inf(1)
	bounds := []float64{1, 2, 5, 10, inf}
	for _, tc := range []struct {
		name string
		h    histogram
		q    float64
		want float64
	}{
		{"empty is NaN", hist(0, bounds, []float64{0, 0, 0, 0, 0}), 0.5, math.NaN()},
		{"no buckets is NaN", histogram{}, 0.5, math.NaN()},
		// 10 observations ≤ 1, 10 in (1,2]: the median is the top of the first bucket.
		{"median at a bucket edge", hist(0, bounds, []float64{10, 20, 20, 20, 20}), 0.5, 1},
		// 4 in [0,1], 4 in (1,2]: rank 6 is half way through the second bucket.
		{"interpolated inside a bucket", hist(0, bounds, []float64{4, 8, 8, 8, 8}), 0.75, 1.5},
		{"first bucket from zero", hist(0, bounds, []float64{10, 10, 10, 10, 10}), 0.5, 0.5},
		{"first bucket from its floor", hist(1, bounds, []float64{10, 10, 10, 10, 10}), 0.5, 1},
		{"rank in +Inf gives the highest finite bound", hist(0, bounds, []float64{0, 0, 0, 1, 10}), 0.99, 10},
		{"p99 in the last finite bucket", hist(0, bounds, []float64{0, 0, 0, 100, 100}), 0.99, 5 + 5*0.99},
		{"empty buckets below are skipped", hist(0, bounds, []float64{0, 0, 10, 10, 10}), 0.5, 3.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.h.quantile(tc.q)
			if math.IsNaN(tc.want) != math.IsNaN(got) || (!math.IsNaN(got) && math.Abs(got-tc.want) > 1e-9) {
				t.Errorf("quantile(%g) = %g, want %g", tc.q, got, tc.want)
			}
		})
	}
}

func TestHistogramAboveTop(t *testing.T) {
	inf := math.Inf(1)
	h := hist(0, []float64{1, 2, inf}, []float64{50, 98, 100})
	if h.aboveTop(0.5) || h.aboveTop(0.98) {
		t.Error("quantiles inside the finite buckets reported above the top")
	}
	if !h.aboveTop(0.99) {
		t.Error("p99 in the +Inf bucket not reported")
	}
	if (histogram{}).aboveTop(0.99) || hist(0, []float64{1, inf}, []float64{0, 0}).aboveTop(0.99) {
		t.Error("an empty histogram reported above the top")
	}
	ps := newPosterStats(metricsSnapshot{BatchSize: hist(1, []float64{1000, inf}, []float64{10, 10}), BatchCommit: h})
	if !slices.Equal(ps.Above, []string{"commit_p99_ms"}) {
		t.Errorf("above = %q, want commit_p99_ms", ps.Above)
	}
	if got := commitCell(result{Poster: ps}); got != "1000 / > 2000" {
		t.Errorf("commit cell = %q", got)
	}
}

func TestHistogramSub(t *testing.T) {
	inf := math.Inf(1)
	bounds := []float64{1, 10, 100, inf}
	before := hist(1, bounds, []float64{5, 5, 5, 5})
	before.Sum = 5
	after := hist(1, bounds, []float64{5, 5, 105, 105})
	after.Sum = 5 + 100*50
	d := after.sub(before)
	if d.Count != 100 || d.Sum != 5000 || d.Floor != 1 {
		t.Fatalf("delta count/sum/floor = %g/%g/%g, want 100/5000/1", d.Count, d.Sum, d.Floor)
	}
	for i, want := range []float64{0, 0, 100, 100} {
		if d.Buckets[i].Count != want {
			t.Errorf("delta bucket %g = %g, want %g", d.Buckets[i].UpperBound, d.Buckets[i].Count, want)
		}
	}
	if got := d.quantile(0.5); got != 55 {
		t.Errorf("delta median = %g, want 55 (half way through (10, 100])", got)
	}
	if got := d.mean(); got != 50 {
		t.Errorf("delta mean = %g, want 50", got)
	}
	// A restarted ledgerd starts from zero: the later scrape is the delta.
	restarted := hist(1, bounds, []float64{1, 2, 2, 2})
	if got := restarted.sub(after); got.Count != 2 || got.Buckets[1].Count != 2 {
		t.Errorf("delta after a restart = %+v, want the later scrape itself", got)
	}
	if got := after.sub(histogram{}); got.Count != 105 {
		t.Errorf("delta from nothing = %+v, want the whole histogram", got)
	}
}

func TestSnapshotSub(t *testing.T) {
	a := metricsSnapshot{Retries: 3, FailedBatches: 1}
	b := metricsSnapshot{Retries: 10, FailedBatches: 1}
	if d := b.sub(a); d.Retries != 7 || d.FailedBatches != 0 {
		t.Errorf("delta = %+v", d)
	}
}
