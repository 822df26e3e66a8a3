package metrics

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/creditledger/creditledger/metering"
)

var dsn string

func TestMain(m *testing.M) { os.Exit(testdb.Main(m, &dsn)) }

// scrape is the registry in the text format, as GET /metrics serves it.
func scrape(t *testing.T, m *Metrics) []byte {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.Bytes()
}

func value(t *testing.T, m *Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	for _, metric := range family(t, m, name).GetMetric() {
		match := true
		for _, l := range metric.GetLabel() {
			if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case metric.Gauge != nil:
			return metric.GetGauge().GetValue()
		case metric.Counter != nil:
			return metric.GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}

// sourcedMetrics is a Metrics watching the test database and a consumer
// reporting stats, with every kind of series observed once.
func sourcedMetrics(t *testing.T, consumerErr error) (*Metrics, *pg.DB) {
	t.Helper()
	testdb.Require(t, dsn)
	db, err := pg.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	m := New()
	m.Watch(Sources{DB: db, Consumer: func(context.Context) (metering.ConsumerStats, error) {
		return metering.ConsumerStats{Pending: 12, AckPending: 3, Redelivered: 2}, consumerErr
	}})
	m.Watch(Sources{}) // ignored: registering twice would panic
	m.ObserveHTTP("POST", "/v1/events", 202, time.Millisecond)
	m.BatchCommitted(0, 3, time.Millisecond, 1)
	m.Ingested("nats", []metering.EventResult{{Status: metering.EventAccepted}, {Status: metering.EventDuplicate},
		{Status: metering.EventRejected, Rejection: &metering.EventRejection{Code: metering.CodeNoMeter}}})
	return m, db
}

// TestSources: the scrape-time gauges read the NATS consumer, the outbox,
// the webhook deliveries and the pool.
func TestSources(t *testing.T) {
	m, db := sourcedMetrics(t, nil)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO outbox (id, topic, payload, created_at, available_at)
		VALUES ($1, 'test.metrics', '{}', now() - interval '90 seconds', now())`, uuid.New()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"ledger_nats_consumer_pending_messages":     12,
		"ledger_nats_consumer_ack_pending_messages": 3,
		"ledger_nats_consumer_redelivered_messages": 2,
		"ledger_db_pool_max_connections":            float64(db.Pool.Config().MaxConns),
	} {
		if got := value(t, m, name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := value(t, m, "ledger_outbox_pending_messages", nil); got < 1 {
		t.Errorf("outbox backlog %v, want at least the row just added", got)
	}
	if got := value(t, m, "ledger_outbox_oldest_pending_age_seconds", nil); got < 89 {
		t.Errorf("outbox oldest age %v s, want >= 90", got)
	}
	for _, st := range []string{"pending", "failed"} {
		value(t, m, "ledger_webhook_deliveries", map[string]string{"status": st})
	}
	for _, src := range []string{"database", "nats"} {
		if got := value(t, m, "ledger_scrape_source_up", map[string]string{"source": src}); got != 1 {
			t.Errorf("%s up = %v", src, got)
		}
	}

	down, _ := sourcedMetrics(t, errors.New("nats gone"))
	if got := value(t, down, "ledger_scrape_source_up", map[string]string{"source": "nats"}); got != 0 {
		t.Errorf("nats up with the consumer failing = %v", got)
	}
	if strings.Contains(string(scrape(t, down)), "ledger_nats_consumer_pending_messages") {
		t.Error("consumer gauges reported while the consumer could not be read")
	}
}

// TestPromtoolCheck: a scrape with every series present passes `promtool
// check metrics` (naming, units, _total, help) with nothing to say.
func TestPromtoolCheck(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian: apt-get install prometheus; make test installs it when it can)")
	}
	m, _ := sourcedMetrics(t, nil)
	body := scrape(t, m)
	for _, want := range []string{"ledger_build_info{", "ledger_events_rejected_total{code=\"no_meter\"}", "ledger_webhook_deliveries{status=\"failed\"}",
		"ledger_db_pool_acquire_waits_total", "ledger_outbox_oldest_pending_age_seconds", "ledger_nats_consumer_redelivered_messages"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestRejectionLabelIsBounded(t *testing.T) {
	m := New()
	m.Ingested("http", []metering.EventResult{
		{Status: metering.EventRejected, Rejection: &metering.EventRejection{Code: metering.CodeUnknownCustomer}},
		{Status: metering.EventRejected, Rejection: &metering.EventRejection{Code: "customer 42 said no"}},
	})
	if got := value(t, m, "ledger_events_rejected_total", map[string]string{"code": "unknown_customer"}); got != 1 {
		t.Errorf("unknown_customer = %v", got)
	}
	if got := value(t, m, "ledger_events_rejected_total", map[string]string{"code": "other"}); got != 1 {
		t.Errorf("other = %v", got)
	}
	for _, metric := range family(t, m, "ledger_events_rejected_total").GetMetric() {
		if v := metric.GetLabel()[0].GetValue(); v != "unknown_customer" && v != "other" {
			t.Errorf("label %q escaped the bounded set", v)
		}
	}
}

func TestBuildInfo(t *testing.T) {
	metric := family(t, New(), "ledger_build_info").GetMetric()[0]
	labels := map[string]string{}
	for _, l := range metric.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if metric.GetGauge().GetValue() != 1 || !strings.HasPrefix(labels["goversion"], "go1.") || labels["version"] == "" {
		t.Fatalf("build info %v = %v", labels, metric.GetGauge().GetValue())
	}
}
