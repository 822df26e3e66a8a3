package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ledgerd's defaults (internal/config, metering.ConsumerOptions): events on
// <prefix>.<customer>, in stream LEDGER_EVENTS, consumed by ledgerd-usage.
const (
	subjectPrefix = "ledger.events"
	streamName    = "LEDGER_EVENTS"
	consumerName  = "ledgerd-usage"
)

// natsClient publishes usage events the way an app would and watches
// ledgerd's durable consumer to see when they are applied.
type natsClient struct {
	nc *nats.Conn
	js jetstream.JetStream

	mu     sync.Mutex
	failed []*nats.Msg // async publishes that got no ack; published again
}

func dialNATS(url string, maxPending int) (*natsClient, error) {
	nc, err := nats.Connect(url, nats.Name("loadgen"))
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w", url, err)
	}
	c := &natsClient{nc: nc}
	c.js, err = jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(maxPending),
		jetstream.WithPublishAsyncTimeout(time.Minute),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, _ error) {
			c.mu.Lock()
			c.failed = append(c.failed, m)
			c.mu.Unlock()
		}))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return c, nil
}

func (c *natsClient) close() { c.nc.Close() }

// pubMsg is one event ready to publish.
type pubMsg struct {
	subject string
	id      string // Nats-Msg-Id: the event id, so the stream drops a duplicate
	data    []byte
}

// publishChunk is how many messages are published between two questions
// to proceed.
const publishChunk = 1000

// publish sends msgs in order, asynchronously, with at most the client's
// maxPending unacknowledged, and returns how many it sent once the stream
// has stored every one of them. Before each chunk it asks proceed, which
// may hold it back (ledgerd is far behind) or end it (the time bound has
// passed). A publish the stream did not ack is sent again synchronously
// (the message id makes that safe).
func (c *natsClient) publish(ctx context.Context, msgs []pubMsg, proceed func(ctx context.Context, sent int) (bool, error)) (int, error) {
	sent := 0
	for sent < len(msgs) {
		ok, err := proceed(ctx, sent)
		if err != nil {
			return sent, err
		}
		if !ok {
			break
		}
		for _, m := range msgs[sent:min(sent+publishChunk, len(msgs))] {
			msg := &nats.Msg{Subject: m.subject, Data: m.data, Header: nats.Header{}}
			// A long stall wait: being held back by maxPending is the
			// point, not an error.
			if _, err := c.js.PublishMsgAsync(msg, jetstream.WithMsgID(m.id), jetstream.WithStallWait(time.Minute)); err != nil {
				return sent, fmt.Errorf("publish %s: %w", m.id, err)
			}
			sent++
		}
	}
	select {
	case <-c.js.PublishAsyncComplete():
	case <-ctx.Done():
		return sent, ctx.Err()
	}
	c.mu.Lock()
	failed := c.failed
	c.failed = nil
	c.mu.Unlock()
	for _, m := range failed {
		if _, err := c.js.PublishMsg(ctx, m); err != nil {
			return sent, fmt.Errorf("publish again %s: %w", m.Header.Get(jetstream.MsgIDHeader), err)
		}
	}
	return sent, nil
}

// lastSeq is the stream's last sequence number. The stream keeps every
// scenario's events, so a scenario's events are those after the lastSeq
// read before it published.
func (c *natsClient) lastSeq(ctx context.Context) (uint64, error) {
	s, err := c.js.Stream(ctx, streamName)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", streamName, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", streamName, err)
	}
	return info.State.LastSeq, nil
}

// consumerState is a reading of ledgerd's consumer.
type consumerState struct {
	AckFloor    uint64 // every message up to here is acked
	Delivered   uint64 // the last stream sequence handed to ledgerd
	AckPending  int    // handed out, not yet acked
	Pending     uint64 // in the stream, not yet handed out
	Redelivered int
}

func (c *natsClient) consumerState(ctx context.Context) (consumerState, error) {
	cons, err := c.js.Consumer(ctx, streamName, consumerName)
	if err != nil {
		return consumerState{}, fmt.Errorf("consumer %s: %w", consumerName, err)
	}
	info := cons.CachedInfo() // fresh: Consumer just fetched it
	return consumerState{
		AckFloor: info.AckFloor.Stream, Delivered: info.Delivered.Stream, AckPending: info.NumAckPending,
		Pending: info.NumPending, Redelivered: info.NumRedelivered,
	}, nil
}

// applied says how many of the events in (from, to] ledgerd has acked, and
// whether all have: ledgerd acks an event only after its batch committed.
func (s consumerState) applied(from, to uint64) (int, bool) {
	done := s.AckFloor >= to && s.AckPending == 0 && s.Pending == 0
	n := int64(to-from) - int64(s.Pending) - int64(s.AckPending)
	if done {
		n = int64(to - from)
	}
	return int(max(n, 0)), done
}

// behind is how many of the sent events after stream sequence from ledgerd
// has not applied yet: those not handed out, and those handed out but not
// acked. It needs no stream read, so publish can ask it often.
func (s consumerState) behind(from uint64, sent int) int {
	acked := int64(s.Delivered) - int64(from) - int64(s.AckPending)
	return int(int64(sent) - max(acked, 0))
}

// errNotApplied is waitApplied's answer when the deadline came first.
var errNotApplied = errors.New("not every event was applied before the deadline")

// waitApplied polls the consumer until every event in (from, to] is
// applied, returning when it saw that, or errNotApplied with the count
// applied by the deadline.
func (c *natsClient) waitApplied(ctx context.Context, from, to uint64, deadline time.Time) (time.Time, int, error) {
	const poll = 20 * time.Millisecond // ±20 ms on a run of seconds
	for {
		st, err := c.consumerState(ctx)
		now := time.Now()
		if err != nil {
			return now, 0, err
		}
		n, done := st.applied(from, to)
		if done {
			return now, n, nil
		}
		if now.After(deadline) {
			return now, n, errNotApplied
		}
		select {
		case <-ctx.Done():
			return now, n, ctx.Err()
		case <-time.After(poll):
		}
	}
}
