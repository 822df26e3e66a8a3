package metrics

import (
	"context"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/wallet"
)

// Sources are what the scrape-time gauges read: the database (outbox
// backlog, webhook deliveries, pool statistics) and the NATS consumer.
// Either may be nil.
type Sources struct {
	DB       *pg.DB
	Consumer func(context.Context) (metering.ConsumerStats, error)
}

// scrapeTimeout bounds the queries of one scrape: a slow database must not
// hold the scraper past its own timeout.
const scrapeTimeout = 2 * time.Second

// Watch registers the gauges that are read at scrape time from s. Only the
// first call registers; later ones are ignored.
func (m *Metrics) Watch(s Sources) {
	m.watchOnce.Do(func() { m.reg.MustRegister(newSourceCollector(s)) })
}

type sourceCollector struct {
	s Sources

	natsPending, natsAckPending, natsRedelivered *prometheus.Desc
	outboxPending, outboxOldest                  *prometheus.Desc
	deliveries                                   *prometheus.Desc
	poolAcquired, poolIdle, poolTotal, poolMax   *prometheus.Desc
	poolWaits, poolWaitSeconds                   *prometheus.Desc
	up                                           *prometheus.Desc
}

func desc(subsystem, name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, name), help, labels, nil)
}

func newSourceCollector(s Sources) *sourceCollector {
	return &sourceCollector{
		s:               s,
		natsPending:     desc("nats_consumer", "pending_messages", "Usage events in the stream not yet delivered to the ledger's consumer."),
		natsAckPending:  desc("nats_consumer", "ack_pending_messages", "Usage events delivered to the consumer and not yet acknowledged."),
		natsRedelivered: desc("nats_consumer", "redelivered_messages", "Unacknowledged usage events delivered more than once (a poison event stays here until parked)."),
		outboxPending:   desc("outbox", "pending_messages", "Outbox messages (webhooks, immediate top-ups) not yet relayed."),
		outboxOldest:    desc("outbox", "oldest_pending_age_seconds", "Age of the oldest outbox message not yet relayed; 0 when none."),
		deliveries:      desc("webhook", "deliveries", "Webhook deliveries by status: pending (to be sent or retried) and failed (gave up).", "status"),
		poolAcquired:    desc("db_pool", "acquired_connections", "Database connections in use."),
		poolIdle:        desc("db_pool", "idle_connections", "Database connections open and idle."),
		poolTotal:       desc("db_pool", "connections", "Database connections open (acquired, idle and being opened)."),
		poolMax:         desc("db_pool", "max_connections", "Most database connections the pool opens."),
		poolWaits:       desc("db_pool", "acquire_waits_total", "Connection acquisitions that waited because the pool was empty."),
		poolWaitSeconds: desc("db_pool", "acquire_wait_seconds_total", "Time spent acquiring connections, waits included."),
		up:              desc("scrape", "source_up", "Whether the last scrape could read a source (database, nats): 1 yes, 0 no.", "source"),
	}
}

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.natsPending, c.natsAckPending, c.natsRedelivered, c.outboxPending, c.outboxOldest,
		c.deliveries, c.poolAcquired, c.poolIdle, c.poolTotal, c.poolMax, c.poolWaits, c.poolWaitSeconds, c.up} {
		ch <- d
	}
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if f := c.s.Consumer; f != nil {
		st, err := f(ctx)
		if err == nil {
			ch <- gauge(c.natsPending, float64(st.Pending))
			ch <- gauge(c.natsAckPending, float64(st.AckPending))
			ch <- gauge(c.natsRedelivered, float64(st.Redelivered))
		}
		ch <- gauge(c.up, boolf(err == nil), "nats")
	}
	db := c.s.DB
	if db == nil {
		return
	}
	st := db.Pool.Stat()
	ch <- gauge(c.poolAcquired, float64(st.AcquiredConns()))
	ch <- gauge(c.poolIdle, float64(st.IdleConns()))
	ch <- gauge(c.poolTotal, float64(st.TotalConns()))
	ch <- gauge(c.poolMax, float64(st.MaxConns()))
	ch <- prometheus.MustNewConstMetric(c.poolWaits, prometheus.CounterValue, float64(st.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.poolWaitSeconds, prometheus.CounterValue, st.AcquireDuration().Seconds())

	ok := true
	var pending int64
	var oldest *time.Time
	var now time.Time
	// The partial index outbox_pending_idx covers exactly these rows.
	if err := db.Pool.QueryRow(ctx, `SELECT count(*), min(created_at), now() FROM outbox WHERE processed_at IS NULL`).Scan(&pending, &oldest, &now); err == nil {
		age := 0.0
		if oldest != nil {
			age = max(now.Sub(*oldest).Seconds(), 0)
		}
		ch <- gauge(c.outboxPending, float64(pending))
		ch <- gauge(c.outboxOldest, age)
	} else {
		ok = false
	}
	// Each status has a partial index (pending: ..._due_idx; failed:
	// ..._failed_idx), so neither count reads the delivery log.
	var pend, failed int64
	if err := db.Pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'),
			(SELECT count(*) FROM webhook_deliveries WHERE status = 'failed')`).Scan(&pend, &failed); err == nil {
		ch <- gauge(c.deliveries, float64(pend), "pending")
		ch <- gauge(c.deliveries, float64(failed), "failed")
	} else {
		ok = false
	}
	ch <- gauge(c.up, boolf(ok), "database")
}

// buildInfo is the ledger_build_info gauge: 1, with the build's version,
// VCS revision and Go version as labels, for joining onto other series.
func buildInfo() prometheus.Collector {
	version, revision, goversion := "(devel)", "unknown", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goversion = bi.GoVersion
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "The running build: always 1, with its version, VCS revision and Go version as labels.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goversion},
	})
	g.Set(1)
	return g
}

// rejectionCodes are the codes the rejected-events counter labels with; any
// other code counts as "other", so a new code in a lower layer cannot grow
// the label set without bound.
var rejectionCodes = sync.OnceValue(func() map[string]bool {
	codes := slices.Concat([]string{
		metering.CodeInvalidJSON, metering.CodeInvalidEvent, metering.CodeUnknownCustomer, metering.CodeNoMeter,
		metering.CodeNoWallet, metering.CodeInvalidValue, metering.CodeConflictingEvent, metering.CodeCustomerNotAllowed,
		metering.CodeLimitExceeded, metering.CodeInvalidData, metering.CodeParked,
	}, wallet.RejectionCodes(), ledger.RejectionCodes())
	m := make(map[string]bool, len(codes))
	for _, c := range codes {
		m[c] = true
	}
	return m
})

// rejectionLabel is code if it is a known rejection code, else "other".
func rejectionLabel(code string) string {
	if rejectionCodes()[code] {
		return code
	}
	return "other"
}
