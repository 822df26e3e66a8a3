package chaos

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ledgerd's defaults: events on <prefix>.<customer>, in stream
// LEDGER_EVENTS, consumed by the durable ledgerd-usage.
const (
	SubjectPrefix = "ledger.events"
	StreamName    = "LEDGER_EVENTS"
	ConsumerName  = "ledgerd-usage"
)

// Broker is the suite's own connection to the nats-server: it publishes as
// an app would and reads the stream and ledgerd's consumer. It reconnects
// forever, so it outlives a broker restart.
type Broker struct {
	nc *nats.Conn
	js jetstream.JetStream
}

// DialBroker connects to url.
func DialBroker(url string) (*Broker, error) {
	nc, err := nats.Connect(url, nats.Name("chaos"), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &Broker{nc: nc, js: js}, nil
}

// Close closes the connection.
func (b *Broker) Close() { b.nc.Close() }

// Msg is one message to publish: Nats-Msg-Id is the event id, so the
// stream drops a publish sent again.
type Msg struct {
	Subject string
	ID      string
	Data    []byte
}

// EventMsg is an innocent event as its app publishes it.
func EventMsg(e Event, customer string) Msg {
	return Msg{Subject: SubjectPrefix + "." + customer, ID: e.ID, Data: e.Encode(customer)}
}

// PublishOnce publishes m and waits up to timeout for the stream's ack.
func (b *Broker) PublishOnce(ctx context.Context, m Msg, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg := &nats.Msg{Subject: m.Subject, Data: m.Data, Header: nats.Header{}}
	_, err := b.js.PublishMsg(ctx, msg, jetstream.WithMsgID(m.ID))
	return err
}

// Publish publishes m until the stream acks it, retrying every failure
// (broker down, no stream yet): the message id makes a retry safe within
// the stream's duplicate window. It gives up when ctx ends.
func (b *Broker) Publish(ctx context.Context, m Msg) (retries int, err error) {
	for {
		err = b.PublishOnce(ctx, m, 2*time.Second)
		if err == nil {
			return retries, nil
		}
		if ctx.Err() != nil {
			return retries, fmt.Errorf("publish %s: gave up: %w (last error: %v)", m.ID, ctx.Err(), err)
		}
		retries++
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// PublishLog is what a paced publisher did with each message.
type PublishLog struct {
	mu        sync.Mutex
	Acked     []bool // by message index: the stream stored it
	Attempted []bool // a publish was sent (acked or not)
	Retries   int
	LastErr   error
}

// AckedCount is how many messages the stream acked.
func (l *PublishLog) AckedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.Acked {
		if a {
			n++
		}
	}
	return n
}

// PublishPaced publishes msgs in order at rate messages a second (0: as
// fast as acks come), each until acked (see Publish), and returns when all
// are acked or ctx ends. Whatever happens, the log says which were acked.
func (b *Broker) PublishPaced(ctx context.Context, msgs []Msg, rate float64) *PublishLog {
	log := &PublishLog{Acked: make([]bool, len(msgs)), Attempted: make([]bool, len(msgs))}
	start := time.Now()
	for i, m := range msgs {
		if rate > 0 {
			at := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			if d := time.Until(at); d > 0 {
				select {
				case <-ctx.Done():
					return log
				case <-time.After(d):
				}
			}
		}
		log.mu.Lock()
		log.Attempted[i] = true
		log.mu.Unlock()
		n, err := b.Publish(ctx, m)
		log.mu.Lock()
		log.Retries += n
		if err != nil {
			log.LastErr = err
			log.mu.Unlock()
			return log
		}
		log.Acked[i] = true
		log.mu.Unlock()
	}
	return log
}

// ConsumerState is a reading of ledgerd's durable consumer.
type ConsumerState struct {
	Exists      bool
	AckFloor    uint64 // every stream sequence up to here is acked
	Delivered   uint64
	AckPending  int
	Pending     uint64 // in the stream, not yet delivered
	Redelivered int
	Waiting     int // pull requests waiting
	LastSeq     uint64
}

// Idle says the consumer has nothing left to do: everything delivered and
// acked.
func (s ConsumerState) Idle() bool {
	return s.Exists && s.Pending == 0 && s.AckPending == 0 && s.AckFloor >= s.LastSeq
}

// Consumer reads the consumer's and the stream's state. A missing stream
// or consumer is not an error: Exists is false.
func (b *Broker) Consumer(ctx context.Context) (ConsumerState, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var st ConsumerState
	s, err := b.js.Stream(ctx, StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	si, err := s.Info(ctx)
	if err != nil {
		return st, err
	}
	st.LastSeq = si.State.LastSeq
	c, err := s.Consumer(ctx, ConsumerName)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	ci := c.CachedInfo()
	st.Exists = true
	st.AckFloor, st.Delivered = ci.AckFloor.Stream, ci.Delivered.Stream
	st.AckPending, st.Pending = ci.NumAckPending, ci.NumPending
	st.Redelivered, st.Waiting = ci.NumRedelivered, ci.NumWaiting
	return st, nil
}

// LastSeq is the stream's last sequence (0 when there is no stream).
func (b *Broker) LastSeq(ctx context.Context) (uint64, error) {
	st, err := b.Consumer(ctx)
	return st.LastSeq, err
}
