// Package metrics holds the service's Prometheus metrics in a registry of
// its own (not the global default one, so tests and several servers in one
// process do not collide), and serves them for GET /metrics.
package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
)

const namespace = "ledger"

// Metrics is the service's metrics. It implements ledger.Observer.
type Metrics struct {
	reg *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	batchSize     prometheus.Histogram
	batchCommit   prometheus.Histogram
	operations    *prometheus.CounterVec
	retries       prometheus.Counter
	failedBatches prometheus.Counter
	failedOps     prometheus.Counter
	refusedOps    *prometheus.CounterVec

	events         *prometheus.CounterVec
	eventsRejected *prometheus.CounterVec
	eventsParked   *prometheus.CounterVec

	queueDepth atomic.Pointer[func() int]
	watchOnce  sync.Once
}

var (
	_ ledger.Observer   = (*Metrics)(nil)
	_ metering.Observer = (*Metrics)(nil)
)

// New makes the metrics and a registry holding them and the Go runtime and
// process collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "http", Name: "requests_total",
		Help: "HTTP requests by method, route pattern and status.",
	}, []string{"method", "route", "status"})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "http", Name: "request_duration_seconds",
		Help:    "HTTP request latency by method, route pattern and status.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"method", "route", "status"})
	m.batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "poster", Name: "batch_size",
		Help:    "Operations per committed poster batch.",
		Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000},
	})
	m.batchCommit = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "poster", Name: "batch_commit_seconds",
		Help: "Time to commit a poster batch, all attempts included.",
		// Up to the poster's batch timeout: under overload commits take
		// seconds, and a top bucket of 2 s hid how many.
		Buckets: []float64{.0005, .001, .002, .003, .005, .0075, .01, .015, .02, .03, .05, .075,
			.1, .15, .2, .3, .5, .75, 1, 1.5, 2, 3, 5, 10, 30},
	})
	m.operations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "poster", Name: "operations_total",
		Help: "Operations in committed batches, by poster shard (an uneven spread means a hot wallet).",
	}, []string{"shard"})
	m.retries = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "poster", Name: "retries_total",
		Help: "Batch transactions run again after a serialization failure or deadlock.",
	})
	m.failedBatches = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "poster", Name: "failed_batches_total",
		Help: "Batches whose transaction failed for good.",
	})
	m.failedOps = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "poster", Name: "failed_operations_total",
		Help: "Operations in batches that failed for good.",
	})
	m.refusedOps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "poster", Name: "refused_operations_total",
		Help: "Operations whose data the database refused, isolated by splitting their batch and refused alone, by code.",
	}, []string{"code"})
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "events", Name: "ingested_total",
		Help: "Usage events by source (http, nats) and outcome (accepted, duplicate, rejected, failed: to be sent again).",
	}, []string{"source", "outcome"})
	m.eventsRejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "events", Name: "rejected_total",
		Help: "Usage events refused for good, by rejection code (as GET /v1/events/rejected lists them).",
	}, []string{"code"})
	m.eventsParked = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "events", Name: "parked_total",
		Help: "Usage events set aside after failing every delivery for an unknown reason (code parked in GET /v1/events/rejected).",
	}, []string{"source"})
	queue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Subsystem: "poster", Name: "queue_depth",
		Help: "Operations waiting for the poster.",
	}, func() float64 {
		if f := m.queueDepth.Load(); f != nil {
			return float64((*f)())
		}
		return 0
	})
	m.reg.MustRegister(
		m.httpRequests, m.httpDuration,
		m.batchSize, m.batchCommit, m.operations, m.retries, m.failedBatches, m.failedOps, m.refusedOps, queue,
		m.events, m.eventsRejected, m.eventsParked, buildInfo(),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry is where other parts of the service (workers, the NATS consumer)
// register metrics of their own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
}

// ObserveHTTP records one request. route must be a route pattern
// ("/v1/wallets/:id"), never a raw path: every distinct value is a new time
// series.
func (m *Metrics) ObserveHTTP(method, route string, status int, took time.Duration) {
	code := strconv.Itoa(status)
	m.httpRequests.WithLabelValues(method, route, code).Inc()
	m.httpDuration.WithLabelValues(method, route, code).Observe(took.Seconds())
}

// BatchCommitted implements ledger.Observer.
func (m *Metrics) BatchCommitted(shard, ops int, took time.Duration, retries int) {
	m.batchSize.Observe(float64(ops))
	m.batchCommit.Observe(took.Seconds())
	m.operations.WithLabelValues(strconv.Itoa(shard)).Add(float64(ops))
	if retries > 0 {
		m.retries.Add(float64(retries))
	}
}

// BatchFailed implements ledger.Observer.
func (m *Metrics) BatchFailed(shard, ops int, err error) {
	m.failedBatches.Inc()
	m.failedOps.Add(float64(ops))
}

// OpRefused implements ledger.Observer.
func (m *Metrics) OpRefused(shard int, code string) {
	m.refusedOps.WithLabelValues(code).Inc()
}

// Ingested implements metering.Observer.
func (m *Metrics) Ingested(source string, results []metering.EventResult) {
	var counts [5]int
	for _, r := range results {
		if int(r.Status) < len(counts) {
			counts[r.Status]++
		}
		if r.Status == metering.EventRejected && r.Rejection != nil {
			m.eventsRejected.WithLabelValues(rejectionLabel(r.Rejection.Code)).Inc()
		}
	}
	for st := metering.EventAccepted; st <= metering.EventFailed; st++ {
		if counts[st] > 0 {
			m.events.WithLabelValues(source, st.String()).Add(float64(counts[st]))
		}
	}
}

// Parked implements metering.Observer.
func (m *Metrics) Parked(source string, n int) {
	m.eventsParked.WithLabelValues(source).Add(float64(n))
}

// QueueDepth makes the poster queue depth gauge report f(). A later call
// replaces f. f is called on every scrape and must be cheap and safe to
// call from any goroutine.
func (m *Metrics) QueueDepth(f func() int) {
	m.queueDepth.Store(&f)
}
