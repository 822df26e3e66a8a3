package natspub

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creditledger/creditledger/client"
	"github.com/creditledger/creditledger/internal/natsserver"
)

// TestPublish: an event lands on ledger.events.<customer> with Nats-Msg-Id
// set to its id, and the stream keeps one copy of an event sent twice.
func TestPublish(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns, err := natsserver.Start(ctx, natsserver.Options{Addr: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{DefaultPrefix + ".>"}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(nc, "")
	if err != nil {
		t.Fatal(err)
	}
	e := client.Event{EventID: "ev-1", CustomerID: "acme", EventName: "tokens", Properties: json.RawMessage(`{"tokens":"12"}`)}
	for range 2 {
		if err := p.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Publish(ctx, client.Event{EventName: "x"}); err == nil {
		t.Fatal("an event without ids was published")
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("%d messages in the stream, want 1", info.State.Msgs)
	}
	msg, err := stream.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	var got client.Event
	if err := json.Unmarshal(msg.Data, &got); err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "ledger.events.acme" || msg.Header.Get("Nats-Msg-Id") != "ev-1" || got.EventID != "ev-1" {
		t.Fatalf("subject %s, Nats-Msg-Id %q, body %s", msg.Subject, msg.Header.Get("Nats-Msg-Id"), msg.Data)
	}
}
