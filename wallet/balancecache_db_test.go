package wallet

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/creditledger/creditledger/internal/balancebus"
	"github.com/creditledger/creditledger/internal/natsserver"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/creditledger/creditledger/ledger"
)

// cachedWorld is a world whose service answers balances from a cache, with
// an uncached service on the same ledger to compare with.
type cachedWorld struct {
	*world
	cache    *BalanceCache
	obs      *countObs
	uncached *Service
}

func newCachedWorld(t *testing.T, db *pg.DB, c *clock, o BalanceCacheOptions) *cachedWorld {
	t.Helper()
	obs := &countObs{}
	o.Observer = obs
	cache := NewBalanceCache(o)
	l, err := ledger.New(db, ledger.Options{Shards: 4, Modules: []ledger.Module{cache.Module()}, Clock: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	svc := NewService(l)
	if err := svc.UseBalanceCache(cache); err != nil {
		t.Fatal(err)
	}
	return &cachedWorld{world: &world{svc: svc, l: l, db: db, clock: c}, cache: cache, obs: obs, uncached: NewService(l)}
}

func openDB(t *testing.T) *pg.DB {
	t.Helper()
	testdb.Require(t, dsn)
	db, err := pg.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// sameAnswer fails unless got and want agree on every field of the
// balance; the runway is checked apart (its burn may be cached).
func sameAnswer(t *testing.T, step string, got, want Balance) {
	t.Helper()
	amounts := []struct {
		name   string
		g, w   ledger.Amount
		gotPtr bool
	}{
		{"available", got.Available, want.Available, false},
		{"held", got.Held, want.Held, false},
		{"overage", got.Overage, want.Overage, false},
		{"granted", got.Granted, want.Granted, false},
		{"consumed", got.Consumed, want.Consumed, false},
		{"expired", got.Expired, want.Expired, false},
		{"voided", got.Voided, want.Voided, false},
	}
	for _, a := range amounts {
		if !a.g.Equal(a.w) {
			t.Errorf("%s: %s = %s, the database says %s", step, a.name, a.g, a.w)
		}
	}
	if got.WalletID != want.WalletID || got.Asset != want.Asset || !got.AsOf.Equal(want.AsOf) {
		t.Errorf("%s: wallet %v/%v asset %s/%s as_of %v/%v", step, got.WalletID, want.WalletID, got.Asset, want.Asset, got.AsOf, want.AsOf)
	}
	if len(got.Grants) != len(want.Grants) {
		t.Fatalf("%s: %d grants, the database says %d", step, len(got.Grants), len(want.Grants))
	}
	for i := range got.Grants {
		g, w := got.Grants[i], want.Grants[i]
		if g.ID != w.ID || !g.Remaining.Equal(w.Remaining) || g.Priority != w.Priority ||
			(g.ExpiresAt == nil) != (w.ExpiresAt == nil) || (g.ExpiresAt != nil && !g.ExpiresAt.Equal(*w.ExpiresAt)) {
			t.Errorf("%s: grant %d = %+v, the database says %+v", step, i, g, w)
		}
	}
	// The runway: from the burn rate answered and the available of the
	// answer, as of its instant.
	if (got.BurnRatePerDay == nil) != (got.DepletesAt == nil) {
		t.Errorf("%s: runway half there: %v %v", step, got.BurnRatePerDay, got.DepletesAt)
	}
	if got.BurnRatePerDay != nil && !got.DepletesAt.Equal(depletesAt(got.Available, *got.BurnRatePerDay, got.AsOf)) {
		t.Errorf("%s: depletes_at %v is not available / burn from as_of", step, got.DepletesAt)
	}
}

// Right after an operation's answer, the balance is answered from memory
// (a hit), shows the operation, and equals what the database says — for
// every kind of batch that changes a balance.
func TestBalanceCacheReadYourWrites(t *testing.T) {
	db := openDB(t)
	c := &clock{t: time.Now().UTC().Truncate(time.Second)}
	w := newCachedWorld(t, db, c, BalanceCacheOptions{})
	ctx := context.Background()
	wl := w.wallet(t, PolicyAllow, "")
	check := func(step string) Balance {
		t.Helper()
		hits := w.obs.hits.Load()
		got, err := w.svc.Balance(ctx, wl.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		if w.obs.hits.Load() != hits+1 {
			t.Errorf("%s: the balance was not answered from the cache", step)
		}
		want, err := w.uncached.Balance(ctx, wl.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		sameAnswer(t, step, got, want)
		return got
	}
	unpack := func(step string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}

	prio := 10
	g1, _, err := ledger.Unpack(w.svc.AddGrant(ctx, "", wl.ID, NewGrant{Amount: ledger.MustAmount("100"), Kind: Paid, Priority: &prio}))
	unpack("grant", err)
	if b := check("after a grant"); !b.Available.Equal(ledger.MustAmount("100")) {
		t.Fatalf("available %s after a grant of 100", b.Available)
	}
	// A second grant, expiring later: the cached entry's boundary.
	g2, _, err := ledger.Unpack(w.svc.AddGrant(ctx, "", wl.ID, NewGrant{Amount: ledger.MustAmount("50"), Kind: Promotional,
		ExpiresAt: at(c.Now().Add(time.Hour))}))
	unpack("grant 2", err)
	check("after a second grant")
	_, err = w.debit(t, wl.ID, "30")
	unpack("debit", err)
	if b := check("after a debit"); !b.Available.Equal(ledger.MustAmount("120")) {
		t.Fatalf("available %s after a debit of 30", b.Available)
	}
	h, _, err := ledger.Unpack(w.svc.PlaceHold(ctx, "", wl.ID, NewHold{Amount: ledger.MustAmount("40")}))
	unpack("hold", err)
	if b := check("after a hold"); !b.Held.Equal(ledger.MustAmount("40")) {
		t.Fatalf("held %s after a hold of 40", b.Held)
	}
	part := ledger.MustAmount("15")
	_, _, err = ledger.Unpack(w.svc.CaptureHold(ctx, "", h.ID, &part))
	unpack("capture", err)
	check("after a capture")
	h2, _, err := ledger.Unpack(w.svc.PlaceHold(ctx, "", wl.ID, NewHold{Amount: ledger.MustAmount("5")}))
	unpack("hold 2", err)
	check("after a second hold")
	_, _, err = ledger.Unpack(w.svc.VoidHold(ctx, "", h2.ID))
	unpack("void hold", err)
	if b := check("after a void of a hold"); !b.Held.IsZero() {
		t.Fatalf("held %s after the holds closed", b.Held)
	}
	_, _, err = ledger.Unpack(w.svc.VoidGrant(ctx, "", g2.ID))
	unpack("void grant", err)
	check("after a void of a grant")
	// Into overage.
	_, err = w.debit(t, wl.ID, "200")
	unpack("debit into overage", err)
	if b := check("after a debit into overage"); !b.Overage.IsPositive() {
		t.Fatalf("no overage: %+v", b)
	}
	// The sweeper expires the second grant's rest an hour on: a batch of
	// the sweeper's, seen as well.
	g3, _, err := ledger.Unpack(w.svc.AddGrant(ctx, "", wl.ID, NewGrant{Amount: ledger.MustAmount("20"), Kind: Promotional,
		ExpiresAt: at(c.Now().Add(time.Hour))}))
	unpack("grant 3", err)
	check("after a third grant")
	c.Advance(time.Hour)
	if _, err := w.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if b := check("after the sweep"); !b.Expired.Equal(ledger.MustAmount("20")) {
		t.Fatalf("expired %s after grant %v expired", b.Expired, g3.ID)
	}
	_ = g1
	// The burn rate is reused for its age, then read again: equal to the
	// database's once it is.
	c.Advance(DefaultBurnMaxAge)
	got, err := w.svc.Balance(ctx, wl.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := w.uncached.Balance(ctx, wl.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.BurnRatePerDay == nil || want.BurnRatePerDay == nil || !got.BurnRatePerDay.Equal(*want.BurnRatePerDay) ||
		!got.DepletesAt.Equal(*want.DepletesAt) {
		t.Fatalf("runway %v %v, the database says %v %v", got.BurnRatePerDay, got.DepletesAt, want.BurnRatePerDay, want.DepletesAt)
	}
}

// A cached balance is answered only until one of its grants becomes
// usable or expires; then it is read again.
func TestBalanceCacheGrantBoundaries(t *testing.T) {
	db := openDB(t)
	c := &clock{t: time.Now().UTC().Truncate(time.Second)}
	w := newCachedWorld(t, db, c, BalanceCacheOptions{MaxAge: 24 * time.Hour})
	ctx := context.Background()
	wl := w.wallet(t, PolicyBlock, "")
	t0 := c.Now()
	w.grant(t, wl.ID, "10", 0, nil, at(t0.Add(2*time.Hour))) // usable until t0+2h
	w.grant(t, wl.ID, "5", 0, at(t0.Add(time.Hour)), nil)    // usable from t0+1h
	read := func(step, avail string, hit bool) {
		t.Helper()
		hits := w.obs.hits.Load()
		b, err := w.svc.Balance(ctx, wl.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !b.Available.Equal(ledger.MustAmount(avail)) {
			t.Errorf("%s: available %s, want %s", step, b.Available, avail)
		}
		if got := w.obs.hits.Load() == hits+1; got != hit {
			t.Errorf("%s: from the cache %v, want %v", step, got, hit)
		}
	}
	c.Advance(time.Second)
	read("now", "10", true) // put by the second grant's batch
	c.t = t0.Add(time.Hour - time.Millisecond)
	read("just before the second grant is usable", "10", true)
	c.t = t0.Add(time.Hour)
	read("when it is", "15", false)
	read("again", "15", true)
	c.t = t0.Add(2 * time.Hour)
	read("when the first expires", "5", false)
}

// tcpProxy forwards a port to NATS, so that a test can cut one process's
// connection while the others keep theirs.
type tcpProxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
}

func (p *tcpProxy) start(t *testing.T) {
	t.Helper()
	addr := p.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port of a closed listener may take a moment
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); _ = u.Close() }()
			go func() { _, _ = io.Copy(c, u); _ = c.Close() }()
		}
	}()
}

func (p *tcpProxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
	}
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func eventually(t *testing.T, what string, within time.Duration, f func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !f() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// Two processes on one database, each with its cache and NATS connection:
// a debit through A reaches B's answers through the invalidation A
// publishes (the clock is frozen, so no entry ages out); B disconnected
// from NATS serves nothing from its cache.
func TestBalanceCacheTwoProcesses(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	ns, err := natsserver.Start(ctx, natsserver.Options{Addr: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	proxy := &tcpProxy{target: strings.TrimPrefix(ns.ClientURL(), "nats://")}
	proxy.start(t)
	t.Cleanup(proxy.stop)
	connect := func(url string) *nats.Conn {
		nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
			nats.ReconnectJitter(0, 0), nats.PingInterval(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	subject := "_test.balances." + t.Name()
	c := &clock{t: time.Now().UTC().Truncate(time.Second)}
	busA := balancebus.New(connect(ns.ClientURL()), subject, nil)
	ncB := connect("nats://" + proxy.addr)
	busB := balancebus.New(ncB, subject, nil)
	a := newCachedWorld(t, db, c, BalanceCacheOptions{Broadcaster: busA, MaxAge: time.Hour})
	b := newCachedWorld(t, db, c, BalanceCacheOptions{Broadcaster: busB, MaxAge: time.Hour})
	if !a.cache.Online() || !b.cache.Online() {
		t.Fatal("caches offline with their connections up")
	}

	wl := a.wallet(t, PolicyBlock, "")
	a.grant(t, wl.ID, "100", 0, nil, nil)
	readB := func() Balance {
		t.Helper()
		bal, err := b.svc.Balance(ctx, wl.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		return bal
	}
	// Warm B (A's invalidation of its grant may still be on its way and
	// drop what B read: read until B answers from memory).
	eventually(t, "B answers from its cache", time.Second, func() bool {
		hits := b.obs.hits.Load()
		got := readB()
		return got.Available.Equal(ledger.MustAmount("100")) && b.obs.hits.Load() == hits+1
	})

	if _, err := a.debit(t, wl.ID, "10"); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, "B sees A's debit", time.Second, func() bool {
		return readB().Available.Equal(ledger.MustAmount("90"))
	})
	t.Logf("B saw A's debit after %v", took)
	want, err := b.uncached.Balance(ctx, wl.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameAnswer(t, "B after A's debit", readB(), want)

	// B's connection cut: B stops serving from its cache at once, and a
	// debit through A (whose invalidation B cannot receive) is seen.
	proxy.stop()
	eventually(t, "B notices it is disconnected", 5*time.Second, func() bool { return !b.cache.Online() })
	if b.cache.Len() != 0 {
		t.Fatalf("B kept %d entries while disconnected", b.cache.Len())
	}
	if _, err := a.debit(t, wl.ID, "10"); err != nil {
		t.Fatal(err)
	}
	hits := b.obs.hits.Load()
	for range 3 {
		if got := readB(); !got.Available.Equal(ledger.MustAmount("80")) {
			t.Fatalf("B disconnected answered %s, want 80", got.Available)
		}
	}
	if b.obs.hits.Load() != hits || b.cache.Len() != 0 {
		t.Fatalf("B disconnected served %d answers from its cache, holds %d", b.obs.hits.Load()-hits, b.cache.Len())
	}
	// B's own debit while disconnected is not kept either.
	if _, err := b.debit(t, wl.ID, "5"); err != nil {
		t.Fatal(err)
	}
	if b.cache.Len() != 0 {
		t.Fatal("B kept its own commit while disconnected")
	}

	// Back: B serves again, and hears A again; A hears of B's debit (its
	// message waited in B's reconnect buffer).
	proxy.start(t)
	eventually(t, "B reconnects", 10*time.Second, func() bool { return b.cache.Online() })
	eventually(t, "A sees B's debit", time.Second, func() bool {
		bal, err := a.svc.Balance(ctx, wl.ID, nil)
		return err == nil && bal.Available.Equal(ledger.MustAmount("75"))
	})
	readB()
	hits = b.obs.hits.Load()
	if got := readB(); !got.Available.Equal(ledger.MustAmount("75")) || b.obs.hits.Load() != hits+1 {
		t.Fatalf("B after reconnecting: %s, hit %v", got.Available, b.obs.hits.Load() == hits+1)
	}
	if _, err := a.debit(t, wl.ID, "5"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B sees A's debit after reconnecting", time.Second, func() bool {
		return readB().Available.Equal(ledger.MustAmount("70"))
	})
}

// BenchmarkBalanceCached reads one wallet's balance from memory: the hit
// path of GET /v1/wallets/{id}/balance.
func BenchmarkBalanceCached(b *testing.B) {
	testdb.Require(b, dsn)
	ctx := context.Background()
	db, err := pg.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	obs := &countObs{}
	cache := NewBalanceCache(BalanceCacheOptions{MaxAge: time.Hour, Observer: obs})
	l, err := ledger.New(db, ledger.Options{Shards: 4, Modules: []ledger.Module{cache.Module()}})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = l.Close(ctx) }()
	svc := NewService(l)
	if err := svc.UseBalanceCache(cache); err != nil {
		b.Fatal(err)
	}
	cu, err := svc.CreateCustomer(ctx, Customer{Name: b.Name()})
	if err != nil {
		b.Fatal(err)
	}
	wl, err := svc.CreateWallet(ctx, NewWallet{CustomerID: cu.ID, Asset: "CREDITS", OveragePolicy: PolicyBlock})
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := ledger.Unpack(svc.AddGrant(ctx, "", wl.ID, NewGrant{Amount: ledger.MustAmount("1000000"), Kind: Paid})); err != nil {
		b.Fatal(err)
	}
	if _, _, err := ledger.Unpack(svc.Debit(ctx, "", wl.ID, NewDebit{Amount: ledger.MustAmount("1")})); err != nil {
		b.Fatal(err)
	}
	if _, err := svc.Balance(ctx, wl.ID, nil); err != nil { // the burn rate
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := svc.Balance(ctx, wl.ID, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if obs.misses.Load() > 0 {
		b.Fatalf("%d misses", obs.misses.Load())
	}
}
