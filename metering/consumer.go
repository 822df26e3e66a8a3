package metering

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/ratelog"
)

// ConsumerOptions configure the NATS consumer.
type ConsumerOptions struct {
	Stream        string // LEDGER_NATS_STREAM
	SubjectPrefix string // LEDGER_NATS_SUBJECT_PREFIX; events arrive on <prefix>.<customer_id>
	Durable       string // consumer name; default "ledgerd-usage"
	Workers       int    // concurrent fetch loops; default 4
	Batch         int    // messages per fetch; default 1000
	// AckWait is how long JetStream waits for an ack before redelivering a
	// message: after a crash, the messages the dead process held wait this
	// long (the fault suite measured a 30 s drain per kill at 30 s). A
	// batch being applied sends InProgress every AckWait/3, so a live but
	// slow worker keeps its messages. Default 10s.
	AckWait    time.Duration
	Duplicates time.Duration // the stream's Nats-Msg-Id window; default 2m
	// MaxDeliveries is how often an event that fails for a reason nobody
	// classified (fault.Internal: a bug, a schema that does not match)
	// is tried before it is parked (Service.Park). Default 10. Deliveries
	// while the database is unreachable do not count: events wait for it
	// however long it is away.
	MaxDeliveries int
	// RetryDelay is how long a failed event waits before its next delivery,
	// doubled per delivery up to 30 times it. Default 1s.
	RetryDelay time.Duration
	// HealthWindow is how long without a working fetch (and no batch being
	// applied) makes Healthy report an error. Default 10s.
	HealthWindow time.Duration
	Log          *slog.Logger

	// beforeAck lets tests stop a worker between commit and ack.
	beforeAck func() error
}

// Consumer feeds usage events from JetStream into the ingest path.
type Consumer struct {
	svc  *Service
	js   jetstream.JetStream
	opts ConsumerOptions
	log  *slog.Logger
	logs ratelog.Limiter

	mu       sync.Mutex
	cons     jetstream.Consumer // replaced when the broker lost it
	healedAt time.Time

	lastFetch atomic.Int64 // unix nanoseconds of the last fetch that worked
	busy      atomic.Int32 // batches being applied
}

// NewConsumer creates the stream if it is missing (or updates its subjects)
// and the durable pull consumer.
func NewConsumer(ctx context.Context, nc *nats.Conn, svc *Service, opts ConsumerOptions) (*Consumer, error) {
	if opts.Durable == "" {
		opts.Durable = "ledgerd-usage"
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Batch <= 0 {
		opts.Batch = MaxBatchEvents
	}
	if opts.AckWait <= 0 {
		opts.AckWait = 10 * time.Second
	}
	if opts.Duplicates <= 0 {
		opts.Duplicates = 2 * time.Minute
	}
	if opts.MaxDeliveries <= 0 {
		opts.MaxDeliveries = 10
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = time.Second
	}
	if opts.HealthWindow <= 0 {
		opts.HealthWindow = 10 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	c := &Consumer{svc: svc, js: js, opts: opts, log: opts.Log}
	cons, err := c.ensure(ctx)
	if err != nil {
		return nil, err
	}
	c.cons = cons
	c.lastFetch.Store(time.Now().UnixNano())
	return c, nil
}

// ensure creates the stream and the durable consumer, or updates them to
// this configuration.
func (c *Consumer) ensure(ctx context.Context) (jetstream.Consumer, error) {
	subject := c.opts.SubjectPrefix + ".>"
	stream, err := c.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        c.opts.Stream,
		Description: "usage events for the credits ledger",
		Subjects:    []string{subject},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      7 * 24 * time.Hour,
		Duplicates:  c.opts.Duplicates,
	})
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", c.opts.Stream, err)
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:   c.opts.Durable,
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   c.opts.AckWait,
		// Unlimited: a database outage must not drop events. Poison is
		// refused and acked; what fails for unknown reasons is parked by
		// the consumer after MaxDeliveries (see handle), never dropped.
		MaxDeliver:    -1,
		MaxAckPending: c.opts.Workers * c.opts.Batch * 2,
		FilterSubject: subject,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", c.opts.Durable, err)
	}
	return cons, nil
}

// consumer is the current JetStream consumer.
func (c *Consumer) consumer() jetstream.Consumer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cons
}

// heal recreates the stream and consumer after the broker lost them (a
// NATS server restarted on an empty store, a stream deleted by hand):
// without it the workers would fetch from nothing forever, quietly. At most
// one attempt a second, whichever worker noticed.
func (c *Consumer) heal(ctx context.Context, cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.healedAt) < time.Second {
		return
	}
	c.healedAt = time.Now()
	cons, err := c.ensure(ctx)
	if err != nil {
		c.logs.Log(c.log, slog.LevelError, "usage events: the stream or consumer is gone and could not be made again", "cause", cause, "err", err)
		return
	}
	c.cons = cons
	c.log.Warn("usage events: the stream or consumer was gone; made again", "stream", c.opts.Stream, "consumer", c.opts.Durable, "cause", cause)
}

// Healthy reports whether the consumer is consuming: a fetch worked within
// HealthWindow, or a batch is being applied. /readyz asks it.
func (c *Consumer) Healthy() error {
	if c.busy.Load() > 0 {
		return nil
	}
	if since := time.Since(time.Unix(0, c.lastFetch.Load())); since > c.opts.HealthWindow {
		return fmt.Errorf("no fetch from stream %s has worked for %s", c.opts.Stream, since.Truncate(time.Second))
	}
	return nil
}

// Run consumes until ctx ends. Each worker fetches a batch, ingests it, and
// acknowledges each message once its event is applied or refused for good;
// the others are redelivered after a delay (see handle).
func (c *Consumer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make(chan error, c.opts.Workers)
	for i := 0; i < c.opts.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.work(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (c *Consumer) work(ctx context.Context) error {
	wait := time.Duration(0) // while the database is unreachable
	for ctx.Err() == nil {
		batch, err := c.consumer().Fetch(c.opts.Batch, jetstream.FetchMaxWait(250*time.Millisecond))
		if err != nil {
			c.fetchFailed(ctx, err)
			continue
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if err := batch.Error(); err != nil && len(msgs) == 0 {
			c.fetchFailed(ctx, err)
			continue
		}
		c.lastFetch.Store(time.Now().UnixNano())
		if len(msgs) == 0 {
			continue
		}
		unavailable, err := c.handle(ctx, msgs)
		if errors.Is(err, errStop) {
			return nil
		}
		if !unavailable {
			wait = 0
			continue
		}
		// The database is away: the events wait in JetStream. Do not
		// hammer it; a few seconds at most, so it is used again soon
		// after it is back.
		wait = min(max(2*wait, 250*time.Millisecond), 5*time.Second)
		sleep(ctx, wait)
	}
	return ctx.Err()
}

// fetchFailed handles a fetch that did not work: the broker lost the stream
// or consumer (heal it), or cannot be reached (wait for the client to
// reconnect).
func (c *Consumer) fetchFailed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	if lost(err) {
		c.heal(ctx, err)
	} else {
		c.logs.Log(c.log, slog.LevelWarn, "usage events: fetch from NATS failed", "stream", c.opts.Stream, "err", err)
	}
	sleep(ctx, 250*time.Millisecond)
}

// lost reports whether err says the stream or the consumer is gone.
func lost(err error) bool {
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) ||
		errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerDoesNotExist) ||
		errors.Is(err, nats.ErrNoResponders) {
		return true
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "consumer not found") || strings.Contains(msg, "stream not found")
}

var errStop = errors.New("consumer stopped before acknowledging")

// handle ingests one fetched batch and answers each message: acked once
// its event is applied, a duplicate, or refused for good (recorded, once,
// however often it is redelivered); redelivered later otherwise. A message
// that failed because the database was unreachable waits for it however
// long; one that failed for an unknown reason is retried with a growing
// delay and parked after MaxDeliveries. unavailable says the database was
// away, so the worker should slow down.
func (c *Consumer) handle(ctx context.Context, msgs []jetstream.Msg) (unavailable bool, err error) {
	c.busy.Add(1)
	defer c.busy.Add(-1)
	defer c.keepInProgress(msgs)()
	var (
		raws      []json.RawMessage
		of        []jetstream.Msg // the message of each raw
		cloud     []bool          // whether each raw is a CloudEvent
		misrouted []rejectionRow
		routedOff []jetstream.Msg
	)
	for _, m := range msgs {
		raw := json.RawMessage(m.Data())
		// The subject names the customer; an event that names another one
		// was published to the wrong place and is refused, not guessed at.
		want := strings.TrimPrefix(m.Subject(), c.opts.SubjectPrefix+".")
		if got := guessCustomer(raw); got != "" && got != want {
			misrouted = append(misrouted, rejectionRow{raw: raw, customer: got, rej: EventRejection{EventID: guessID(raw),
				Code: CodeInvalidEvent, Detail: fmt.Sprintf("published on %s but names customer %q", m.Subject(), got)}})
			routedOff = append(routedOff, m)
			continue
		}
		raws = append(raws, raw)
		of = append(of, m)
		cloud = append(cloud, IsCloudEvent(m.Headers().Get("Content-Type"), raw))
	}
	results, err := c.svc.IngestEach(ctx, raws, IngestOptions{Source: "nats", CloudEvent: func(i int) bool { return cloud[i] }})
	if err != nil {
		return true, err
	}
	var ack, later []jetstream.Msg
	if err := c.svc.recordRejections(ctx, "nats", c.svc.l.Now(), misrouted); err != nil {
		later = append(later, routedOff...)
		unavailable = true
	} else {
		ack = append(ack, routedOff...)
	}
	var park []ParkedEvent
	var parked []jetstream.Msg
	delays := map[jetstream.Msg]time.Duration{}
	for i, r := range results {
		m := of[i]
		if r.Status != EventFailed {
			ack = append(ack, m)
			continue
		}
		deliveries := 1
		if md, err := m.Metadata(); err == nil {
			deliveries = int(md.NumDelivered)
		}
		if pg.KindOf(r.Err) == fault.Unavailable {
			unavailable = true
			later = append(later, m)
			continue
		}
		if deliveries >= c.opts.MaxDeliveries {
			want := strings.TrimPrefix(m.Subject(), c.opts.SubjectPrefix+".")
			park = append(park, ParkedEvent{Raw: raws[i], Customer: want, Deliveries: deliveries, Cause: r.Err})
			parked = append(parked, m)
			continue
		}
		c.logs.Log(c.log, slog.LevelWarn, "usage event failed; will be redelivered", "deliveries", deliveries, "err", r.Err)
		delays[m] = min(c.opts.RetryDelay<<min(deliveries-1, 16), 30*c.opts.RetryDelay)
		later = append(later, m)
	}
	if len(park) > 0 {
		if err := c.svc.Park(ctx, "nats", park); err != nil {
			later = append(later, parked...)
			unavailable = true
		} else {
			c.log.Error("usage events parked after failing every delivery; listed in GET /v1/events/rejected with code parked",
				"events", len(park), "deliveries", c.opts.MaxDeliveries, "first_err", park[0].Cause)
			ack = append(ack, parked...)
		}
	}
	if c.opts.beforeAck != nil {
		if err := c.opts.beforeAck(); err != nil {
			return unavailable, errStop
		}
	}
	for _, m := range ack {
		if err := m.Ack(); err != nil {
			// Unacked, it is redelivered and is a duplicate: safe.
			c.logs.Log(c.log, slog.LevelWarn, "usage events: nats ack failed", "err", err)
		}
	}
	var unNaked int
	for _, m := range later {
		d, ok := delays[m]
		if !ok {
			d = c.opts.RetryDelay
		}
		if err := m.NakWithDelay(d); err != nil {
			unNaked++ // JetStream redelivers it after AckWait all the same
		}
	}
	if unNaked > 0 {
		c.logs.Log(c.log, slog.LevelWarn, "usage events not applied could not be NAKed; they come back after the ack wait",
			"events", unNaked)
	}
	if unavailable {
		c.logs.Log(c.log, slog.LevelWarn, "usage events not applied: the database is unreachable; they wait in JetStream",
			"events", len(later))
	}
	return unavailable, nil
}

// keepInProgress tells JetStream, every third of AckWait until stop is
// called, that msgs are still being worked on. A batch slower than AckWait
// (a slow database, a one-transaction-per-event poster) would otherwise be
// redelivered to another worker while it is still applying: no double count
// (the journal's keys see to that), but the same events applied twice over
// on a system that is already behind.
func (c *Consumer) keepInProgress(msgs []jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(c.opts.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, m := range msgs {
					_ = m.InProgress() // if lost, the worst is a redelivery
				}
			}
		}
	}()
	return func() { close(done); <-exited }
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Publish sends one event the way apps should: on <prefix>.<customer_id>
// with Nats-Msg-Id set to the event id, so the broker drops duplicates
// within its window. It waits for the stream's acknowledgement.
func Publish(ctx context.Context, js jetstream.JetStream, prefix string, e Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = js.Publish(ctx, prefix+"."+e.CustomerID, b, jetstream.WithMsgID(e.EventID))
	return err
}
