package metering

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ConsumerOptions configure the NATS consumer.
type ConsumerOptions struct {
	Stream        string        // LEDGER_NATS_STREAM
	SubjectPrefix string        // LEDGER_NATS_SUBJECT_PREFIX; events arrive on <prefix>.<customer_id>
	Durable       string        // consumer name; default "ledgerd-usage"
	Workers       int           // concurrent fetch loops; default 4
	Batch         int           // messages per fetch; default 1000
	AckWait       time.Duration // redelivery after an unacked message; default 30s
	Duplicates    time.Duration // the stream's Nats-Msg-Id window; default 2m
	Log           *slog.Logger

	// beforeAck lets tests stop a worker between commit and ack.
	beforeAck func() error
}

// Consumer feeds usage events from JetStream into Ingest.
type Consumer struct {
	svc  *Service
	js   jetstream.JetStream
	cons jetstream.Consumer
	opts ConsumerOptions
	log  *slog.Logger
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
		opts.AckWait = 30 * time.Second
	}
	if opts.Duplicates <= 0 {
		opts.Duplicates = 2 * time.Minute
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	subject := opts.SubjectPrefix + ".>"
	stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        opts.Stream,
		Description: "usage events for the credits ledger",
		Subjects:    []string{subject},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      7 * 24 * time.Hour,
		Duplicates:  opts.Duplicates,
	})
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", opts.Stream, err)
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       opts.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       opts.AckWait,
		MaxDeliver:    -1, // a database outage must not drop events; poison is acked, not retried
		MaxAckPending: opts.Workers * opts.Batch * 2,
		FilterSubject: subject,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", opts.Durable, err)
	}
	return &Consumer{svc: svc, js: js, cons: cons, opts: opts, log: opts.Log}, nil
}

// Run consumes until ctx ends. Each worker fetches a batch, ingests it, and
// acknowledges the messages only after the ledger committed them; if the
// database cannot be reached the batch is negatively acknowledged with a
// growing delay and JetStream redelivers it.
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
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		batch, err := c.cons.Fetch(c.opts.Batch, jetstream.FetchMaxWait(250*time.Millisecond))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.log.Warn("nats fetch", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if len(msgs) == 0 {
			continue
		}
		if err := c.handle(ctx, msgs); err != nil {
			if errors.Is(err, errStop) {
				return nil
			}
			backoff = min(max(2*backoff, 500*time.Millisecond), 30*time.Second)
			c.log.Warn("usage batch not applied; will be redelivered", "events", len(msgs), "retry_in", backoff, "err", err)
			for _, m := range msgs {
				_ = m.NakWithDelay(backoff)
			}
			sleep(ctx, backoff)
			continue
		}
		backoff = 0
	}
	return ctx.Err()
}

var errStop = errors.New("consumer stopped before acknowledging")

// handle ingests one fetched batch and acknowledges it.
func (c *Consumer) handle(ctx context.Context, msgs []jetstream.Msg) error {
	defer c.keepInProgress(msgs)()
	raws := make([]json.RawMessage, 0, len(msgs))
	var misrouted []rejectionRow
	for _, m := range msgs {
		raw := json.RawMessage(m.Data())
		// The subject names the customer; an event that names another one
		// was published to the wrong place and is refused, not guessed at.
		want := strings.TrimPrefix(m.Subject(), c.opts.SubjectPrefix+".")
		if got := guessCustomer(raw); got != "" && got != want {
			misrouted = append(misrouted, rejectionRow{raw: raw, customer: got, rej: Rejection{EventID: guessID(raw),
				Code: CodeInvalidEvent, Detail: fmt.Sprintf("published on %s but names customer %q", m.Subject(), got)}})
			continue
		}
		raws = append(raws, raw)
	}
	res, err := c.svc.Ingest(ctx, raws, "nats")
	if err != nil {
		return err
	}
	if err := c.svc.recordRejections(ctx, "nats", c.svc.l.Now(), misrouted); err != nil {
		return err
	}
	if c.opts.beforeAck != nil {
		if err := c.opts.beforeAck(); err != nil {
			return errStop
		}
	}
	for _, m := range msgs {
		if err := m.Ack(); err != nil {
			// Unacked, it is redelivered and counted as a duplicate: safe.
			c.log.Warn("nats ack", "err", err)
		}
	}
	if n := len(res.Rejected) + len(misrouted); n > 0 {
		c.log.Info("usage batch applied with rejections", "accepted", res.Accepted, "duplicates", res.Duplicates, "rejected", n)
	}
	return nil
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
