package metering

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creditledger/creditledger/internal/natsserver"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

// simulateBug makes the database fail, with an error nobody classified
// (XX000), every event whose id starts with prefix: a trigger in this test
// package's own database, dropped when the test ends.
func simulateBug(t *testing.T, w *world, prefix string) {
	t.Helper()
	ctx := context.Background()
	fn := "bug_" + strings.NewReplacer("-", "_", ".", "_").Replace(prefix)
	for _, q := range []string{
		`CREATE FUNCTION ` + fn + `() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
			IF NEW.event_id LIKE '` + prefix + `%' THEN RAISE EXCEPTION 'simulated bug' USING ERRCODE = 'XX000'; END IF;
			RETURN NEW; END $$`,
		`CREATE TRIGGER ` + fn + ` BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION ` + fn + `()`,
	} {
		if _, err := w.db.Pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_, _ = w.db.Pool.Exec(ctx, `DROP TRIGGER `+fn+` ON events`)
		_, _ = w.db.Pool.Exec(ctx, `DROP FUNCTION `+fn+`()`)
	})
}

func (w *world) rejectionRows(t *testing.T, like string) map[string]int {
	t.Helper()
	rows, err := w.db.Pool.Query(context.Background(), `SELECT code FROM event_rejections WHERE raw LIKE $1`, "%"+like+"%")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var code string
		if err := rows.Scan(&code); err != nil {
			t.Fatal(err)
		}
		out[code]++
	}
	return out
}

// waitDrained waits until the consumer has nothing pending or unacked.
func waitDrained(t *testing.T, c *Consumer, within time.Duration) *jetstream.ConsumerInfo {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		info, err := c.consumer().Info(context.Background())
		if err == nil && info.NumAckPending == 0 && info.NumPending == 0 {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("messages still pending: %+v %v", info, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// One event fails on every delivery for a reason nobody classified, in the
// same fetches as good events and bad JSON. Before, the whole fetch was
// nak'ed and reprocessed each time, forever, and the bad JSON recorded on
// every redelivery. Now the good events are acked once applied, the bad
// JSON is recorded once, and the failing event alone is redelivered with a
// delay and parked after MaxDeliveries.
func TestUnknownFailureIsParkedAlone(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	nc, js := broker(t)
	cus, wl := w.customer(t, "1000")
	m := w.meter(t, Meter{Code: "calls", Aggregation: Count})
	w.price(t, m, `{"model":"per_unit","unit_price":"1"}`)
	simulateBug(t, w, "boom-"+cus)
	opts := consumerOpts("S" + cus[4:])
	opts.Workers, opts.MaxDeliveries, opts.RetryDelay = 1, 3, 50*time.Millisecond
	c, err := NewConsumer(ctx, nc, w.svc, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		publish(t, js, cus, m.EventName, i, true)
		switch i {
		case 10:
			b, _ := json.Marshal(map[string]any{"event_id": "boom-" + cus, "customer_id": cus, "event_name": m.EventName})
			if _, err := js.Publish(ctx, "ledger.events."+cus, b); err != nil {
				t.Fatal(err)
			}
		case 20:
			if _, err := js.Publish(ctx, "ledger.events."+cus, []byte(`{"event_id":"badjson-`+cus+`",`)); err != nil {
				t.Fatal(err)
			}
		}
	}
	runConsumer(t, c)
	w.waitConsumed(t, wl.ID, "30")
	info := waitDrained(t, c, 20*time.Second)
	// 30 good and the bad JSON once each; the failing event three times.
	if info.Delivered.Consumer != 34 {
		t.Errorf("%d deliveries, want 34: only the failing event is redelivered", info.Delivered.Consumer)
	}
	if got := w.rejectionRows(t, "boom-"+cus); got[CodeParked] != 1 || len(got) != 1 {
		t.Errorf("failing event recorded as %v, want parked once", got)
	}
	if got := w.rejectionRows(t, "badjson-"+cus); got[CodeInvalidJSON] != 1 || len(got) != 1 {
		t.Errorf("bad JSON recorded as %v, want once", got)
	}
	if n := w.eventRows(t, cus); n != 30 {
		t.Errorf("%d events stored, want 30", n)
	}
}

// The hot-row attack of the fault campaign: two events whose quantities,
// at 0.000003 a token, filled a shard's revenue row and blocked about a
// quarter of all customers for good. Now a quantity beyond MaxQuantity is
// refused alone, over HTTP and over NATS, and a charge beyond the ledger's
// limit per operation too; the innocent customers' events and debits apply.
func TestHotRowAttackIsRefusedAlone(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	nc, js := broker(t)
	attacker, _ := w.customer(t, "10")
	m := w.meter(t, Meter{Code: "tokens", Aggregation: Sum, Property: "tokens"})
	w.price(t, m, `{"model":"per_unit","unit_price":"0.000003"}`)
	expensive := w.meter(t, Meter{Code: "gpu", Aggregation: Sum, Property: "seconds"})
	w.price(t, expensive, `{"model":"per_unit","unit_price":"1000000000000"}`)
	type innocent struct {
		id string
		wl wallet.Wallet
	}
	var innocents []innocent
	for range 12 {
		id, wl := w.customer(t, "100")
		innocents = append(innocents, innocent{id, wl})
	}
	attack := []json.RawMessage{
		event("attack-1-"+attacker, attacker, m.EventName, map[string]any{"tokens": json.Number("33333333333333333333333332000000")}),
		event("attack-2-"+attacker, attacker, m.EventName, map[string]any{"tokens": json.Number("778000")}),
		event("attack-3-"+attacker, attacker, expensive.EventName, map[string]any{"seconds": json.Number("1000000")}),
	}
	batch := append([]json.RawMessage{}, attack...)
	for i, in := range innocents {
		batch = append(batch, event(fmt.Sprintf("ok-%d-%s", i, in.id), in.id, m.EventName, map[string]any{"tokens": 1000000}))
	}
	res := w.ingest(t, batch...)
	codes := map[string]string{}
	for _, r := range res.Rejected {
		codes[r.EventID] = r.Code
	}
	if res.Accepted != 1+len(innocents) || codes["attack-1-"+attacker] != CodeInvalidValue || codes["attack-3-"+attacker] != CodeLimitExceeded {
		t.Fatalf("HTTP: %+v", res)
	}
	// Over NATS: refused, recorded once, acked; never a loop.
	c, err := NewConsumer(ctx, nc, w.svc, consumerOpts("S"+attacker[4:]))
	if err != nil {
		t.Fatal(err)
	}
	for i, raw := range attack {
		id := fmt.Sprintf("nats-attack-%d-%s", i, attacker)
		raw = json.RawMessage(strings.Replace(string(raw), fmt.Sprintf("attack-%d-%s", i+1, attacker), id, 1))
		if _, err := js.Publish(ctx, "ledger.events."+attacker, raw, jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
	}
	for i, in := range innocents {
		id := fmt.Sprintf("nats-ok-%d-%s", i, in.id)
		raw := event(id, in.id, m.EventName, map[string]any{"tokens": 1000000})
		if _, err := js.Publish(ctx, "ledger.events."+in.id, raw, jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
	}
	runConsumer(t, c)
	for _, in := range innocents {
		w.waitConsumed(t, in.wl.ID, "6") // 3 each: one million tokens over HTTP and over NATS
	}
	waitDrained(t, c, 10*time.Second)
	if got := w.rejectionRows(t, "nats-attack-0-"+attacker); got[CodeInvalidValue] != 1 {
		t.Errorf("NATS attack event recorded as %v", got)
	}
	// And the innocents' debits still answer.
	for _, in := range innocents {
		if _, _, err := ledger.Unpack(w.wallets.Debit(ctx, "", in.wl.ID, wallet.NewDebit{Amount: ledger.MustAmount("1")})); err != nil {
			t.Fatalf("innocent debit: %v", err)
		}
	}
}

// A NATS server restarted on an empty store has no stream: before, ledgerd
// fetched from nothing forever, /readyz said 200 and nothing was logged.
// Now the consumer notices, makes the stream and consumer again, and events
// published after the restart apply; while the broker is away, Healthy says
// so.
func TestStreamLostIsMadeAgain(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	start := func() *natsserver.Server {
		ns, err := natsserver.Start(ctx, natsserver.Options{Addr: addr, StoreDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if ns.ClientURL() != "nats://"+addr {
			t.Fatalf("the broker came back on %s, not %s", ns.ClientURL(), addr)
		}
		return ns
	}
	ns := start()
	nc, err := nats.Connect(ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cus, wl := w.customer(t, "1000")
	m := w.meter(t, Meter{Code: "calls", Aggregation: Count})
	w.price(t, m, `{"model":"per_unit","unit_price":"1"}`)
	opts := consumerOpts("S" + cus[4:])
	opts.HealthWindow = time.Second
	c, err := NewConsumer(ctx, nc, w.svc, opts)
	if err != nil {
		t.Fatal(err)
	}
	runConsumer(t, c)
	for i := range 5 {
		publish(t, js, cus, m.EventName, i, true)
	}
	w.waitConsumed(t, wl.ID, "5")

	ns.Shutdown()
	deadline := time.Now().Add(10 * time.Second)
	for c.Healthy() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the consumer still says it is healthy with the broker gone")
		}
		time.Sleep(50 * time.Millisecond)
	}
	ns = start() // same address, empty store
	t.Cleanup(ns.Shutdown)
	deadline = time.Now().Add(15 * time.Second)
	for i := 5; ; i++ {
		// Publishing fails ("no stream") until the consumer made it again.
		b, _ := json.Marshal(map[string]any{"event_id": fmt.Sprintf("%s-%d", cus, i), "customer_id": cus, "event_name": m.EventName})
		if _, err := js.Publish(ctx, "ledger.events."+cus, b, jetstream.WithMsgID(fmt.Sprintf("%s-%d", cus, i))); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stream was not made again on the empty broker")
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.waitConsumed(t, wl.ID, "6")
	if err := c.Healthy(); err != nil {
		t.Fatalf("consuming again, but Healthy says %v", err)
	}
}
