package metering

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creditledger/creditledger/internal/natsserver"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

// broker is an embedded JetStream server for one test.
func broker(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	ns, err := natsserver.Start(context.Background(), natsserver.Options{Addr: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func consumerOpts(stream string) ConsumerOptions {
	return ConsumerOptions{Stream: stream, SubjectPrefix: "ledger.events", Workers: 2, Batch: 100, AckWait: time.Second}
}

// runConsumer runs c until the test ends or stop is called.
func runConsumer(t *testing.T, c *Consumer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.Run(ctx); err != nil {
			t.Errorf("consumer: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// waitConsumed polls the wallet until it has consumed want.
func (w *world) waitConsumed(t *testing.T, id wallet.WalletID, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		b, err := w.wallets.Balance(context.Background(), id, nil)
		if err == nil {
			last = b.Consumed.String()
			if last == want {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("consumed %s, want %s", last, want)
}

func (w *world) eventRows(t *testing.T, customer string) int {
	t.Helper()
	var n int
	if err := w.db.Pool.QueryRow(context.Background(), `SELECT COUNT(*) FROM events WHERE customer_id = $1`, customer).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func publish(t *testing.T, js jetstream.JetStream, customer, name string, i int, withID bool) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"event_id": fmt.Sprintf("%s-%d", customer, i), "customer_id": customer, "event_name": name})
	var opts []jetstream.PublishOpt
	if withID {
		opts = append(opts, jetstream.WithMsgID(fmt.Sprintf("%s-%d", customer, i)))
	}
	if _, err := js.Publish(context.Background(), "ledger.events."+customer, b, opts...); err != nil {
		t.Fatal(err)
	}
}

// Published twice with Nats-Msg-Id (the broker drops one) and twice more
// without (the database drops them): every event counts once.
func TestConsumerAppliesEachEventOnce(t *testing.T) {
	w := newWorld(t)
	nc, js := broker(t)
	cus, wl := w.customer(t, "1000")
	m := w.meter(t, Meter{Code: "calls", Aggregation: Count})
	w.price(t, m, `{"model":"per_unit","unit_price":"0.5"}`)
	c, err := NewConsumer(context.Background(), nc, w.svc, consumerOpts("S"+cus[4:]))
	if err != nil {
		t.Fatal(err)
	}
	runConsumer(t, c)
	for i := 0; i < 100; i++ {
		publish(t, js, cus, m.EventName, i, true)
		publish(t, js, cus, m.EventName, i, true)
		if i%10 == 0 {
			publish(t, js, cus, m.EventName, i, false)
			publish(t, js, cus, m.EventName, i, false)
		}
	}
	w.waitConsumed(t, wl.ID, "50")
	time.Sleep(300 * time.Millisecond) // let the resends land too
	w.waitConsumed(t, wl.ID, "50")
	if n := w.eventRows(t, cus); n != 100 {
		t.Fatalf("%d events stored, want 100", n)
	}
}

// The consumer dies after its batch committed but before it acknowledged:
// JetStream redelivers, and the redelivered events are duplicates.
func TestCrashBetweenCommitAndAck(t *testing.T) {
	w := newWorld(t)
	nc, js := broker(t)
	cus, wl := w.customer(t, "1000")
	m := w.meter(t, Meter{Code: "calls", Aggregation: Count})
	w.price(t, m, `{"model":"per_unit","unit_price":"1"}`)
	opts := consumerOpts("S" + cus[4:])
	opts.Workers = 1
	var crashed atomic.Int32
	crashing := opts
	crashing.beforeAck = func() error { crashed.Add(1); return fmt.Errorf("crash") }
	first, err := NewConsumer(context.Background(), nc, w.svc, crashing)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		publish(t, js, cus, m.EventName, i, true)
	}
	stop := runConsumer(t, first)
	w.waitConsumed(t, wl.ID, "20") // committed...
	stop()                         // ...and gone without acking
	if crashed.Load() == 0 {
		t.Fatal("the crash hook never ran")
	}
	second, err := NewConsumer(context.Background(), nc, w.svc, opts)
	if err != nil {
		t.Fatal(err)
	}
	runConsumer(t, second)
	// Redelivery happens after AckWait; then nothing is left pending.
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := second.consumer().Info(context.Background())
		if err == nil && info.NumAckPending == 0 && info.NumPending == 0 && info.NumRedelivered == 0 && info.Delivered.Consumer > 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("messages still pending: %+v", info)
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.waitConsumed(t, wl.ID, "20")
	if n := w.eventRows(t, cus); n != 20 {
		t.Fatalf("%d events stored, want 20", n)
	}
}

// A batch that takes longer than AckWait is kept in progress, not
// redelivered to the other worker while it is still being applied.
func TestSlowBatchIsNotRedelivered(t *testing.T) {
	w := newWorld(t)
	nc, js := broker(t)
	cus, wl := w.customer(t, "1000")
	m := w.meter(t, Meter{Code: "calls", Aggregation: Count})
	w.price(t, m, `{"model":"per_unit","unit_price":"1"}`)
	opts := consumerOpts("S" + cus[4:])
	opts.beforeAck = func() error { time.Sleep(2500 * time.Millisecond); return nil } // 2.5 × AckWait
	c, err := NewConsumer(context.Background(), nc, w.svc, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		publish(t, js, cus, m.EventName, i, true)
	}
	runConsumer(t, c)
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := c.consumer().Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 0 && info.NumPending == 0 && info.Delivered.Consumer >= 10 {
			if info.Delivered.Consumer != 10 || info.NumRedelivered != 0 {
				t.Fatalf("delivered %d times for 10 events (%d redelivered)", info.Delivered.Consumer, info.NumRedelivered)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("messages still pending: %+v", info)
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.waitConsumed(t, wl.ID, "10")
}

// The database goes away mid-stream: events wait in JetStream and are
// applied once it is back, none lost and none twice.
func TestDatabaseOutage(t *testing.T) {
	ctx := context.Background()
	setup := newWorld(t)
	cus, wl := setup.customer(t, "1000")
	m := setup.meter(t, Meter{Code: "calls", Aggregation: Count})
	setup.price(t, m, `{"model":"per_unit","unit_price":"0.25"}`)

	// A second ledger reaches the database through a proxy the test can cut.
	p := testdb.NewProxy(t, dsn)
	db, err := pg.Open(ctx, p.URL(dsn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	l, err := ledger.New(db, ledger.Options{Shards: 2, Modules: []ledger.Module{Module(), wallet.Module()}, BatchTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	ws := wallet.NewService(l)
	if _, err := ws.System(ctx, "CREDITS"); err != nil {
		t.Fatal(err)
	}
	svc := NewService(l, ws, nil)

	nc, js := broker(t)
	c, err := NewConsumer(ctx, nc, svc, consumerOpts("S"+cus[4:]))
	if err != nil {
		t.Fatal(err)
	}
	runConsumer(t, c)
	for i := 0; i < 40; i++ {
		publish(t, js, cus, m.EventName, i, true)
	}
	setup.waitConsumed(t, wl.ID, "10")
	p.Cut()
	for i := 40; i < 100; i++ {
		publish(t, js, cus, m.EventName, i, true)
	}
	time.Sleep(2 * time.Second) // batches fail and are nak'ed meanwhile
	if b := setup.balance(t, wl.ID); b.Consumed.String() != "10" {
		t.Fatalf("consumed %s while the database was away", b.Consumed)
	}
	p.Restore()
	setup.waitConsumed(t, wl.ID, "25")
	if n := setup.eventRows(t, cus); n != 100 {
		t.Fatalf("%d events stored, want 100", n)
	}
}

// Poison (bad JSON, an unknown customer, an event published under another
// customer's subject) is recorded and acknowledged; good events in the same
// batch apply and nothing stays pending.
func TestPoisonOverNATS(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	nc, js := broker(t)
	cus, wl := w.customer(t, "1000")
	m := w.meter(t, Meter{Code: "calls", Aggregation: Count})
	w.price(t, m, `{"model":"per_unit","unit_price":"1"}`)
	c, err := NewConsumer(ctx, nc, w.svc, consumerOpts("S"+cus[4:]))
	if err != nil {
		t.Fatal(err)
	}
	publish(t, js, cus, m.EventName, 1, true)
	for _, p := range []struct{ subject, body string }{
		{"ledger.events." + cus, `{"event_id":"bad-json-` + cus + `",`},
		{"ledger.events.ghost-" + cus, `{"event_id":"ghost-` + cus + `","customer_id":"ghost-` + cus + `","event_name":"` + m.EventName + `"}`},
		{"ledger.events.someone-" + cus, `{"event_id":"misrouted-` + cus + `","customer_id":"` + cus + `","event_name":"` + m.EventName + `"}`},
		// Text PostgreSQL cannot store: the rejection must be recordable,
		// or the batch is nak'ed and redelivered for ever.
		{"ledger.events." + cus, `{"event_id":"nul\u0000-` + cus + `","customer_id":"` + cus + `","event_name":"` + m.EventName + `"}`},
		{"ledger.events." + cus, "{\"event_id\":\"raw-nul-" + cus + "\",\x00"},
		{"ledger.events." + cus, `{"event_id":"props-nul-` + cus + `","customer_id":"` + cus + `","event_name":"` + m.EventName +
			`","properties":{"a":"\u0000"}}`},
	} {
		if _, err := js.Publish(ctx, p.subject, []byte(p.body)); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, js, cus, m.EventName, 2, true)
	runConsumer(t, c)
	w.waitConsumed(t, wl.ID, "2")
	waitDrained(t, c, 10*time.Second)
	list, _, err := w.svc.Rejections(ctx, "", "", 500)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range list {
		for _, id := range []string{"bad-json-", "ghost-", "misrouted-", "raw-nul-", "props-nul-"} {
			if r.EventID == id+cus {
				seen[id] = true
			}
		}
	}
	if len(seen) != 5 {
		t.Fatalf("recorded %v, want the five poison events with a storable id", seen)
	}
}
