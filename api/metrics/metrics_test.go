package metrics

import (
	"errors"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// family gathers the registry and returns one metric family by name.
func family(t *testing.T, m *Metrics, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

func TestObserver(t *testing.T) {
	m := New()
	m.BatchCommitted(0, 1, 300*time.Microsecond, 0)
	m.BatchCommitted(1, 1500, 40*time.Millisecond, 3)
	m.BatchFailed(1, 7, errors.New("boom"))

	for name, want := range map[string]float64{
		"ledger_poster_retries_total":           3,
		"ledger_poster_failed_batches_total":    1,
		"ledger_poster_failed_operations_total": 7,
	} {
		if got := family(t, m, name).GetMetric()[0].GetCounter().GetValue(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for _, metric := range family(t, m, "ledger_poster_operations_total").GetMetric() {
		shard := metric.GetLabel()[0].GetValue()
		if want := map[string]float64{"0": 1, "1": 1500}[shard]; metric.GetCounter().GetValue() != want {
			t.Errorf("shard %s operations = %v, want %v", shard, metric.GetCounter().GetValue(), want)
		}
	}

	size := family(t, m, "ledger_poster_batch_size").GetMetric()[0].GetHistogram()
	if size.GetSampleCount() != 2 || size.GetSampleSum() != 1501 {
		t.Errorf("batch size: count %d sum %v", size.GetSampleCount(), size.GetSampleSum())
	}
	for _, b := range size.GetBucket() {
		want := uint64(1)
		if b.GetUpperBound() >= 2000 {
			want = 2
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("batch size bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
	commit := family(t, m, "ledger_poster_batch_commit_seconds").GetMetric()[0].GetHistogram()
	if first := commit.GetBucket()[0]; first.GetUpperBound() != 0.0005 || first.GetCumulativeCount() != 1 {
		t.Errorf("first commit bucket le=%v holds %d, want le=0.0005 holding 1", first.GetUpperBound(), first.GetCumulativeCount())
	}
}

func TestQueueDepth(t *testing.T) {
	m := New()
	depth := func() float64 {
		return family(t, m, "ledger_poster_queue_depth").GetMetric()[0].GetGauge().GetValue()
	}
	if got := depth(); got != 0 {
		t.Errorf("before QueueDepth: %v", got)
	}
	m.QueueDepth(func() int { return 5 })
	m.QueueDepth(func() int { return 9 }) // replaces, does not register twice
	if got := depth(); got != 9 {
		t.Errorf("after QueueDepth: %v, want 9", got)
	}
}

func TestHTTP(t *testing.T) {
	m := New()
	m.ObserveHTTP("GET", "/v1/wallets/:id", 200, 3*time.Millisecond)
	m.ObserveHTTP("GET", "/v1/wallets/:id", 200, 3*time.Millisecond)
	c := family(t, m, "ledger_http_requests_total").GetMetric()[0]
	labels := map[string]string{}
	for _, l := range c.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if c.GetCounter().GetValue() != 2 || labels["method"] != "GET" || labels["route"] != "/v1/wallets/:id" || labels["status"] != "200" {
		t.Errorf("requests: %v %v", c.GetCounter().GetValue(), labels)
	}
	family(t, m, "go_goroutines")
	family(t, m, "process_cpu_seconds_total")
}
