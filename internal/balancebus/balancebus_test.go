package balancebus

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/creditledger/creditledger/internal/natsserver"
)

// Two buses on a real NATS server: each hears the other's ids, in order
// and complete (a batch beyond maxPerMessage split), never its own.
func TestBusCarriesOthersIDs(t *testing.T) {
	ns, err := natsserver.Start(context.Background(), natsserver.Options{Addr: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	type heard struct {
		mu  sync.Mutex
		ids []uuid.UUID
		up  []bool
	}
	start := func() (*Bus, *heard) {
		nc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		b, h := New(nc, "_test.balances", nil), &heard{}
		b.Listen(func(ids []uuid.UUID) {
			h.mu.Lock()
			h.ids = append(h.ids, ids...)
			h.mu.Unlock()
		}, func(up bool) {
			h.mu.Lock()
			h.up = append(h.up, up)
			h.mu.Unlock()
		})
		return b, h
	}
	a, ha := start()
	_, hb := start()
	ids := make([]uuid.UUID, maxPerMessage+5)
	for i := range ids {
		ids[i] = uuid.New()
	}
	a.Publish(ids)
	deadline := time.Now().Add(5 * time.Second)
	for {
		hb.mu.Lock()
		n := len(hb.ids)
		hb.mu.Unlock()
		if n == len(ids) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("heard %d of %d ids", n, len(ids))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := range ids {
		if hb.ids[i] != ids[i] {
			t.Fatalf("id %d: %v, sent %v", i, hb.ids[i], ids[i])
		}
	}
	ha.mu.Lock()
	defer ha.mu.Unlock()
	if len(ha.ids) != 0 {
		t.Fatalf("a heard %d of its own ids", len(ha.ids))
	}
	if len(ha.up) != 1 || !ha.up[0] {
		t.Fatalf("a's connection states: %v, want [true]", ha.up)
	}
}

// A lost message is seen at the sender's next one: the gap in its
// sequence numbers makes the receiver start over (connected(true), which
// empties the cache), and so does a sender first heard past its first
// message; messages in sequence do not.
func TestBusGapStartsOver(t *testing.T) {
	ns, err := natsserver.Start(context.Background(), natsserver.Options{Addr: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	connect := func() *nats.Conn {
		nc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	var (
		mu     sync.Mutex
		heard  int
		starts int
	)
	b := New(connect(), "_test.gaps", nil)
	b.Listen(func(ids []uuid.UUID) {
		mu.Lock()
		heard += len(ids)
		mu.Unlock()
	}, func(up bool) {
		mu.Lock()
		if up {
			starts++
		}
		mu.Unlock()
	})
	a := New(connect(), "_test.gaps", nil)
	wait := func(n int) int {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			h, s := heard, starts
			mu.Unlock()
			if h == n {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("heard %d ids, want %d", h, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	base := wait(0) // Listen's own start
	a.Publish([]uuid.UUID{uuid.New()})
	a.Publish([]uuid.UUID{uuid.New()})
	if s := wait(2); s != base {
		t.Fatalf("%d starts over for messages in sequence", s-base)
	}
	a.mu.Lock()
	a.seq++ // a message that never arrived
	a.mu.Unlock()
	a.Publish([]uuid.UUID{uuid.New()})
	if s := wait(3); s != base+1 {
		t.Fatalf("%d starts over after a lost message, want 1", s-base)
	}
	c := New(connect(), "_test.gaps", nil)
	c.seq = 7 // heard first past its first message
	c.Publish([]uuid.UUID{uuid.New()})
	if s := wait(4); s != base+2 {
		t.Fatalf("%d starts over for a sender first heard at 8, want 2 in all", s-base)
	}
}
