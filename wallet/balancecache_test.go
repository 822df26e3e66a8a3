package wallet

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/ledger"
)

// Unit tests of the balance cache, without a database.

// countObs counts hits and misses.
type countObs struct{ hits, misses atomic.Int64 }

func (o *countObs) BalanceCacheHit()  { o.hits.Add(1) }
func (o *countObs) BalanceCacheMiss() { o.misses.Add(1) }

// fakeBus is a Broadcaster held by the test: it records what is published
// and lets the test play the other processes and the connection.
type fakeBus struct {
	mu         sync.Mutex
	published  [][]uuid.UUID
	invalidate func([]uuid.UUID)
	connected  func(bool)
}

func (b *fakeBus) Publish(ids []uuid.UUID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.published = append(b.published, ids)
}

func (b *fakeBus) Listen(inv func([]uuid.UUID), conn func(bool)) {
	b.invalidate, b.connected = inv, conn
}

func testBalance(id WalletID, avail string, asOf time.Time) Balance {
	return Balance{WalletID: id, Asset: "CREDITS", Available: ledger.MustAmount(avail), AsOf: asOf, Grants: []GrantBalance{}}
}

func TestBalanceCacheMaxAgeAndBoundary(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewBalanceCache(BalanceCacheOptions{MaxAge: 2 * time.Second})
	a, b := WalletID(uuid.New()), WalletID(uuid.New())
	boundary := t0.Add(time.Second)
	c.committed(c.batchToken(), []cachedBalance{
		{bal: testBalance(a, "10", t0)},
		{bal: testBalance(b, "20", t0), until: &boundary},
	}, nil)
	for _, tc := range []struct {
		id   WalletID
		at   time.Time
		want bool
	}{
		{a, t0, true},
		{a, t0.Add(2*time.Second - time.Nanosecond), true},
		{a, t0.Add(2 * time.Second), false},  // max age
		{a, t0.Add(-time.Nanosecond), false}, // before it was true
		{b, t0.Add(time.Second - time.Nanosecond), true},
		{b, t0.Add(time.Second), false}, // a grant became usable or expired: Available changed
	} {
		if _, ok := c.get(tc.id, tc.at); ok != tc.want {
			t.Errorf("get(%v, t0+%v) = %v, want %v", tc.id == a, tc.at.Sub(t0), ok, tc.want)
		}
	}
	got, _ := c.get(a, t0)
	if !got.Available.Equal(ledger.MustAmount("10")) || !got.AsOf.Equal(t0) {
		t.Fatalf("got %+v", got)
	}
}

func TestGrantBoundary(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := func(st GrantStatus, eff time.Time, exp *time.Time) *grantState {
		return &grantState{Grant: Grant{Status: st, EffectiveAt: eff, ExpiresAt: exp}}
	}
	if b := grantBoundary(t0, []*grantState{g(GrantActive, t0.Add(-time.Hour), nil)}); b != nil {
		t.Fatalf("no boundary expected, got %v", b)
	}
	gs := []*grantState{
		g(GrantActive, t0.Add(-time.Hour), at(t0.Add(3*time.Hour))),  // expires in 3h
		g(GrantActive, t0.Add(2*time.Hour), nil),                     // usable in 2h
		g(GrantActive, t0, at(t0)),                                   // both at t0: not after it
		g(GrantVoided, t0.Add(time.Minute), at(t0.Add(time.Minute))), // closed: never usable
	}
	if b := grantBoundary(t0, gs); b == nil || !b.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("boundary = %v, want t0+2h", b)
	}
}

// A read that began before an invalidation (or a commit, or a clear) must
// not store what it read; one that began after may.
func TestBalanceCacheReadRaces(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewBalanceCache(BalanceCacheOptions{})
	id := WalletID(uuid.New())
	stale := testBalance(id, "10", t0)

	tok := c.begin()
	c.Invalidate(id) // another process changed it while we read
	if c.done(tok, &stale, nil) {
		t.Fatal("a read begun before an invalidation stored its result")
	}
	if _, ok := c.get(id, t0); ok {
		t.Fatal("served a stale read")
	}

	tok = c.begin()
	c.committed(c.batchToken(), []cachedBalance{{bal: testBalance(id, "7", t0)}}, nil) // our own commit while we read
	if c.done(tok, &stale, nil) {
		t.Fatal("a read begun before a commit overwrote the committed balance")
	}
	if got, ok := c.get(id, t0); !ok || !got.Available.Equal(ledger.MustAmount("7")) {
		t.Fatalf("got %v %v, want the committed 7", got.Available, ok)
	}

	tok = c.begin()
	c.SetOnline(true) // a clear (reconnection)
	if c.done(tok, &stale, nil) {
		t.Fatal("a read begun before a clear stored its result")
	}

	// Another wallet's change does not stop a read from storing.
	other := WalletID(uuid.New())
	tok = c.begin()
	c.Invalidate(other)
	fresh := testBalance(id, "5", t0)
	if !c.done(tok, &fresh, nil) {
		t.Fatal("a read not raced by a change of its wallet did not store")
	}
	if got, ok := c.get(id, t0); !ok || !got.Available.Equal(ledger.MustAmount("5")) {
		t.Fatalf("got %v %v, want 5", got.Available, ok)
	}
	// Invalidated with no read in flight: gone, no tombstone kept.
	c.Invalidate(id)
	if _, ok := c.get(id, t0); ok || c.Len() != 0 {
		t.Fatalf("after invalidation: served %v, %d entries", ok, c.Len())
	}
	// A failed read stores nothing and ends.
	tok = c.begin()
	if c.done(tok, nil, nil) || c.reading != 0 {
		t.Fatal("failed read")
	}
}

func TestBalanceCacheBounded(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewBalanceCache(BalanceCacheOptions{Size: 3})
	tok := c.begin()
	for range 10 {
		c.committed(c.batchToken(), []cachedBalance{{bal: testBalance(WalletID(uuid.New()), "1", t0)}}, nil)
	}
	if n := c.Len(); n != 3 {
		t.Fatalf("%d entries, want 3", n)
	}
	// What was evicted may have changed after tok: the read must not store.
	late := testBalance(WalletID(uuid.New()), "1", t0)
	if c.done(tok, &late, nil) {
		t.Fatal("a read older than an eviction stored")
	}
	for range 10 {
		c.setBurn(WalletID(uuid.New()), ledger.MustAmount("1"), t0)
	}
	if len(c.burns) != 3 {
		t.Fatalf("%d burn rates kept, want 3", len(c.burns))
	}
}

func TestBalanceCacheBurnAge(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewBalanceCache(BalanceCacheOptions{BurnMaxAge: time.Minute})
	id := WalletID(uuid.New())
	c.setBurn(id, ledger.MustAmount("70"), t0)
	for _, tc := range []struct {
		after         time.Duration
		ok, refreshed bool
	}{
		{59 * time.Second, true, false},                         // fresh
		{time.Minute, true, true},                               // stale: answered, refreshed behind
		{burnStaleFactor*time.Minute - time.Second, true, true}, // still
		{burnStaleFactor * time.Minute, false, false},           // too old: read again first
		{-time.Second, false, false},                            // before it was read
	} {
		b, ok, refresh := c.burnAt(id, t0.Add(tc.after))
		if ok != tc.ok || refresh != tc.refreshed || ok && !b.Equal(ledger.MustAmount("70")) {
			t.Fatalf("after %v: burn %v ok %v refresh %v, want ok %v refresh %v", tc.after, b, ok, refresh, tc.ok, tc.refreshed)
		}
	}
	// One background refresh per wallet, and at most burnRefreshes at once.
	if !c.claimRefresh(id) || c.claimRefresh(id) {
		t.Fatal("a second refresh of one wallet was allowed, or the first refused")
	}
	for i := 1; i < burnRefreshes; i++ {
		if !c.claimRefresh(WalletID(uuid.New())) {
			t.Fatalf("refresh %d refused", i+1)
		}
	}
	if c.claimRefresh(WalletID(uuid.New())) {
		t.Fatalf("more than %d refreshes at once", burnRefreshes)
	}
	c.refreshed(id)
	if !c.claimRefresh(WalletID(uuid.New())) {
		t.Fatal("a finished refresh did not free its place")
	}
}

// With a broadcaster the cache serves only while its connection is up,
// starts empty when it comes back, publishes what its batches changed and
// forgets what others changed.
func TestBalanceCacheBroadcaster(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	bus := &fakeBus{}
	obs := &countObs{}
	c := NewBalanceCache(BalanceCacheOptions{Broadcaster: bus, Observer: obs})
	a, b := WalletID(uuid.New()), WalletID(uuid.New())
	if c.Online() {
		t.Fatal("online before the broadcaster said so")
	}
	c.committed(c.batchToken(), []cachedBalance{{bal: testBalance(a, "1", t0)}}, []WalletID{b})
	if _, ok := c.get(a, t0); ok {
		t.Fatal("served while offline")
	}
	bus.connected(true)
	tok := c.begin()
	bal := testBalance(a, "1", t0)
	if !c.done(tok, &bal, nil) {
		t.Fatal("did not store once online")
	}
	if _, ok := c.get(a, t0); !ok {
		t.Fatal("not served once online")
	}
	c.committed(c.batchToken(), []cachedBalance{{bal: testBalance(b, "2", t0)}}, nil)
	bus.mu.Lock()
	pubs := bus.published
	bus.mu.Unlock()
	if len(pubs) != 2 || len(pubs[0]) != 2 || pubs[0][0] != uuid.UUID(a) || pubs[0][1] != uuid.UUID(b) ||
		len(pubs[1]) != 1 || pubs[1][0] != uuid.UUID(b) {
		t.Fatalf("published %v", pubs)
	}
	bus.invalidate([]uuid.UUID{uuid.UUID(b)}) // another process changed b
	if _, ok := c.get(b, t0); ok {
		t.Fatal("served an invalidated wallet")
	}
	if _, ok := c.get(a, t0); !ok {
		t.Fatal("an invalidation of b dropped a")
	}
	tok = c.begin()
	bus.connected(false) // invalidations may be missed from now on
	if _, ok := c.get(a, t0); ok || c.Len() != 0 {
		t.Fatal("served, or kept entries, while disconnected")
	}
	if c.done(tok, &bal, nil) {
		t.Fatal("stored while disconnected")
	}
	c.committed(c.batchToken(), []cachedBalance{{bal: testBalance(a, "3", t0)}}, nil)
	if c.Len() != 0 {
		t.Fatal("kept a commit while disconnected")
	}
	bus.connected(true)
	if _, ok := c.get(a, t0); ok {
		t.Fatal("served after reconnecting what was cached before")
	}
	if obs.hits.Load() != 2 || obs.misses.Load() != 4 {
		t.Fatalf("hits %d misses %d, want 2 and 4", obs.hits.Load(), obs.misses.Load())
	}
}

// A batch of ours that began before another process's invalidation of its
// wallet does not put what it computed: the other commit may be the later.
func TestBalanceCacheCommitRacesInvalidation(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewBalanceCache(BalanceCacheOptions{Size: 4})
	id, other := WalletID(uuid.New()), WalletID(uuid.New())
	since := c.batchToken()
	c.Invalidate(id) // arrives while our batch runs
	c.committed(since, []cachedBalance{{bal: testBalance(id, "1", t0)}, {bal: testBalance(other, "2", t0)}}, nil)
	if _, ok := c.get(id, t0); ok {
		t.Fatal("put a balance computed before another process's change")
	}
	if _, ok := c.get(other, t0); !ok {
		t.Fatal("another wallet's balance was not put")
	}
	// A batch begun after the invalidation puts.
	c.committed(c.batchToken(), []cachedBalance{{bal: testBalance(id, "3", t0)}}, nil)
	if _, ok := c.get(id, t0); !ok {
		t.Fatal("a later batch's balance was not put")
	}
	// Beyond its size the record is forgotten behind a floor: older
	// batches put nothing.
	since = c.batchToken()
	for range 5 {
		c.Invalidate(WalletID(uuid.New()))
	}
	c.committed(since, []cachedBalance{{bal: testBalance(other, "4", t0)}}, nil)
	if got, ok := c.get(other, t0); ok && got.Available.Equal(ledger.MustAmount("4")) {
		t.Fatal("put past a forgotten invalidation")
	}
}
