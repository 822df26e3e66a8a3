package wallet

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/ledger"
)

// The balance cache: GET /v1/wallets/{id}/balance answered from memory.
//
// What is kept, per wallet, is the Balance the wallet stage computed from
// the batch's locked state when a batch changed the wallet (put in
// Committed, after COMMIT and before any caller is answered, so an answer is
// never ahead of the cache), or the Balance the database answered on a miss.
// An entry is served while all of these hold:
//
//   - the cache is online: the broadcaster's connection is up (a process
//     that may have missed other processes' invalidations serves nothing,
//     and starts empty when the connection comes back);
//   - it is younger than MaxAge, counted from the instant the balance was
//     true (the bound on staleness when an invalidation is lost);
//   - no grant of the wallet became usable or stopped being usable since
//     (until: the earliest effective_at or expires_at after that instant);
//   - no other process said the wallet changed (Invalidate).
//
// A database read takes a token before it reads (begin) and stores its
// result only if no change of that wallet — a commit, an invalidation, a
// clear — came after the token: a read that started before an invalidation
// can never store what it read after it. Likewise a batch attempt takes a
// token when its stage is made, and its balance of a wallet another process
// invalidated after that is dropped rather than put.
//
// The burn rate of the runway (a 7-day average) is kept apart, per wallet,
// for BurnMaxAge.

// Defaults of BalanceCacheOptions.
const (
	DefaultBalanceCacheSize = 100_000
	DefaultBalanceMaxAge    = 30 * time.Second
	DefaultBurnMaxAge       = time.Minute
)

// Broadcaster carries the ids of changed wallets between the processes
// sharing a database (NATS core in ledgerd: internal/balancebus). Publish
// must not block; a message lost is bounded by the cache's MaxAge.
type Broadcaster interface {
	// Publish tells the other processes that these wallets changed.
	Publish(ids []uuid.UUID)
	// Listen is called once by NewBalanceCache: the broadcaster calls
	// invalidate with the ids other processes published (never its own),
	// and connected whenever its connection goes down or comes back (once
	// at the start with the current state).
	Listen(invalidate func(ids []uuid.UUID), connected func(up bool))
}

// BalanceCacheOptions configures a BalanceCache.
type BalanceCacheOptions struct {
	// Size bounds the wallets kept (and, apart, their burn rates);
	// 0: DefaultBalanceCacheSize.
	Size int
	// MaxAge: how long after the instant it was true a balance may be
	// answered; 0: DefaultBalanceMaxAge.
	MaxAge time.Duration
	// BurnMaxAge: how long a burn rate is reused; 0: DefaultBurnMaxAge.
	BurnMaxAge time.Duration
	// Broadcaster links the caches of the processes on one database. Nil:
	// this process is alone and always online.
	Broadcaster Broadcaster
	// Observer counts hits and misses; nil: none.
	Observer BalanceCacheObserver
}

// BalanceCacheObserver counts how balance reads were answered.
type BalanceCacheObserver interface {
	BalanceCacheHit()
	BalanceCacheMiss()
}

// BalanceCache is a process's cache of wallet balances. Build one with
// NewBalanceCache, put its Module in the ledger's modules (so the wallet
// stage fills it) and give it to the Service with UseBalanceCache.
type BalanceCache struct {
	size            int
	maxAge, burnAge time.Duration
	bc              Broadcaster
	obs             BalanceCacheObserver

	mu      sync.Mutex
	online  bool
	wired   bool       // Module was called: the stage fills it
	seq     uint64     // counts changes: commits, invalidations, stores, clears
	floor   uint64     // reads whose token is below it never store (clear, eviction)
	reading int        // database reads in flight (tombstones are kept only then)
	tombs   []WalletID // tombstones to remove once no read is in flight
	// Invalidations from other processes, by the seq they came at, so a
	// batch of ours that began before one does not put what it computed
	// (its commit may be the older); beyond size, forgotten behind a floor.
	invalidated map[WalletID]uint64
	invalFloor  uint64
	entries     map[WalletID]*balanceEntry
	burns       map[WalletID]burnEntry
	refreshing  map[WalletID]bool // burn rates being refreshed in the background
}

// balanceEntry is one wallet's cached balance, or a tombstone (!ok): the
// wallet changed while a read was in flight.
type balanceEntry struct {
	ok    bool
	bal   Balance
	gen   uint64     // seq of the change that put it
	until *time.Time // the earliest grant boundary after bal.AsOf
}

// NewBalanceCache returns an empty cache; with a broadcaster it is offline
// until the broadcaster says its connection is up.
func NewBalanceCache(o BalanceCacheOptions) *BalanceCache {
	c := &BalanceCache{
		size: o.Size, maxAge: o.MaxAge, burnAge: o.BurnMaxAge, bc: o.Broadcaster, obs: o.Observer,
		online: o.Broadcaster == nil, entries: map[WalletID]*balanceEntry{}, burns: map[WalletID]burnEntry{},
		invalidated: map[WalletID]uint64{},
	}
	if c.size <= 0 {
		c.size = DefaultBalanceCacheSize
	}
	if c.maxAge <= 0 {
		c.maxAge = DefaultBalanceMaxAge
	}
	if c.burnAge <= 0 {
		c.burnAge = DefaultBurnMaxAge
	}
	if c.bc != nil {
		c.bc.Listen(func(ids []uuid.UUID) {
			ws := make([]WalletID, len(ids))
			for i, id := range ids {
				ws[i] = WalletID(id)
			}
			c.Invalidate(ws...)
		}, c.SetOnline)
	}
	return c
}

// Module is the wallet module whose stages fill this cache: pass it to
// ledger.Options.Modules instead of Module().
func (c *BalanceCache) Module() ledger.Module {
	c.mu.Lock()
	c.wired = true
	c.mu.Unlock()
	return module{cache: c}
}

// SetOnline says whether invalidations can reach this process. Either way
// the cache is emptied: going down, what it holds may go stale unseen;
// coming back, invalidations sent meanwhile were missed.
func (c *BalanceCache) SetOnline(up bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.online = up
	c.clearLocked()
}

// Online reports whether the cache serves.
func (c *BalanceCache) Online() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.online
}

// Len is how many entries (tombstones included) the cache holds.
func (c *BalanceCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func (c *BalanceCache) clearLocked() {
	c.seq++
	c.floor = c.seq
	c.entries = map[WalletID]*balanceEntry{}
}

// Invalidate forgets the wallets' balances: another process changed them.
func (c *BalanceCache) Invalidate(ids ...WalletID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.invalidated)+len(ids) > c.size {
		c.invalidated, c.invalFloor = map[WalletID]uint64{}, c.seq+1
	}
	for _, id := range ids {
		c.dropLocked(id)
		c.invalidated[id] = c.seq
	}
}

// batchToken is taken when a batch attempt's stage is made: what the
// batch commits may be put only if no invalidation of its wallet came
// after.
func (c *BalanceCache) batchToken() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq
}

// dropLocked forgets id; while a read is in flight a tombstone remembers
// the change, so that read cannot store what it read before it.
func (c *BalanceCache) dropLocked(id WalletID) {
	c.seq++
	if c.reading == 0 {
		delete(c.entries, id)
		return
	}
	c.setLocked(id, &balanceEntry{gen: c.seq})
	if len(c.tombs) < c.size {
		c.tombs = append(c.tombs, id)
	}
}

// setLocked puts e under id, evicting others beyond the size. An evicted
// entry's change is remembered by the floor: reads older than it do not
// store.
func (c *BalanceCache) setLocked(id WalletID, e *balanceEntry) {
	if _, ok := c.entries[id]; !ok {
		for victim, v := range c.entries {
			if len(c.entries) < c.size {
				break
			}
			if v.gen > c.floor {
				c.floor = v.gen
			}
			delete(c.entries, victim)
		}
	}
	c.entries[id] = e
}

// get is the cached balance of id at now, if it may be answered.
func (c *BalanceCache) get(id WalletID, now time.Time) (Balance, bool) {
	c.mu.Lock()
	e := c.entries[id]
	ok := c.online && e != nil && e.ok && !now.Before(e.bal.AsOf) && now.Sub(e.bal.AsOf) < c.maxAge &&
		(e.until == nil || now.Before(*e.until))
	var b Balance
	if ok {
		b = e.bal
		b.Grants = append([]GrantBalance(nil), e.bal.Grants...)
	}
	c.mu.Unlock()
	if c.obs != nil {
		if ok {
			c.obs.BalanceCacheHit()
		} else {
			c.obs.BalanceCacheMiss()
		}
	}
	return b, ok
}

// readToken is taken before a database read of a balance.
type readToken struct{ seq uint64 }

// begin marks a database read about to start; done must follow.
func (c *BalanceCache) begin() readToken {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reading++
	return readToken{seq: c.seq}
}

// done ends the read begun with t; with b (what it read, valid until
// until) it stores it unless the wallet changed, or the cache was cleared
// or went offline, after t.
func (c *BalanceCache) done(t readToken, b *Balance, until *time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reading--
	stored := c.storeLocked(t, b, until)
	if c.reading == 0 && len(c.tombs) > 0 {
		// No read is left that a tombstone could stop.
		for _, id := range c.tombs {
			if e := c.entries[id]; e != nil && !e.ok {
				delete(c.entries, id)
			}
		}
		c.tombs = c.tombs[:0]
	}
	return stored
}

func (c *BalanceCache) storeLocked(t readToken, b *Balance, until *time.Time) bool {
	if b == nil || !c.online || t.seq < c.floor {
		return false
	}
	if e := c.entries[b.WalletID]; e != nil && e.gen > t.seq {
		return false
	}
	c.seq++
	c.setLocked(b.WalletID, &balanceEntry{ok: true, bal: *b, gen: c.seq, until: until})
	return true
}

// cachedBalance is a balance the wallet stage computed for the cache.
type cachedBalance struct {
	bal   Balance
	until *time.Time
}

// committed puts the balances a batch committed and forgets the wallets it
// changed without one (drop); then tells the other processes. Called from
// the stage's Committed: it must not block.
func (c *BalanceCache) committed(since uint64, put []cachedBalance, drop []WalletID) {
	if len(put) == 0 && len(drop) == 0 {
		return
	}
	c.mu.Lock()
	for _, id := range drop {
		c.dropLocked(id)
	}
	for i := range put {
		p := put[i]
		if since < c.invalFloor || c.invalidated[p.bal.WalletID] > since {
			// Another process changed the wallet after this batch began:
			// its commit may be the later one. Read it again.
			c.dropLocked(p.bal.WalletID)
			continue
		}
		c.seq++
		if !c.online {
			// Not served, and must not be once back: the clear on
			// reconnection forgets it anyway; keep the change counted.
			continue
		}
		c.setLocked(p.bal.WalletID, &balanceEntry{ok: true, bal: p.bal, gen: c.seq, until: p.until})
	}
	c.mu.Unlock()
	if c.bc == nil {
		return
	}
	ids := make([]uuid.UUID, 0, len(put)+len(drop))
	for _, p := range put {
		ids = append(ids, uuid.UUID(p.bal.WalletID))
	}
	for _, id := range drop {
		ids = append(ids, uuid.UUID(id))
	}
	c.bc.Publish(ids)
}

// grantBoundary is the earliest instant after t at which one of the grants
// becomes usable (effective_at) or stops being usable (expires_at): a
// balance computed at t holds its Available until then. Nil: never.
func grantBoundary(t time.Time, gs []*grantState) *time.Time {
	var min *time.Time
	consider := func(x *time.Time) {
		if x != nil && x.After(t) && (min == nil || x.Before(*min)) {
			v := *x
			min = &v
		}
	}
	for _, g := range gs {
		if g.Status != GrantActive {
			continue
		}
		consider(&g.EffectiveAt)
		consider(g.ExpiresAt)
	}
	return min
}

// UseBalanceCache makes Balance answer from c when it can. c must be the
// cache whose Module the service's ledger was built with: otherwise
// nothing would update it when balances change.
func (s *Service) UseBalanceCache(c *BalanceCache) error {
	c.mu.Lock()
	wired := c.wired
	c.mu.Unlock()
	if !wired {
		return errors.New("wallet: the balance cache's Module is not among the ledger's modules")
	}
	s.cache = c
	return nil
}

// cachedBalance is the balance at now from the cache, or read from the
// database (and kept, unless the wallet changed meanwhile); its runway from
// the cached burn rate.
func (s *Service) cachedBalance(ctx context.Context, id WalletID, now time.Time) (Balance, error) {
	c := s.cache
	b, ok := c.get(id, now)
	if !ok {
		tok := c.begin()
		var (
			until *time.Time
			err   error
		)
		b, until, err = s.balanceNow(ctx, id, now)
		if err != nil {
			c.done(tok, nil, nil)
			return Balance{}, err
		}
		c.done(tok, &b, until)
	}
	burned, ok, refresh := c.burnAt(id, now)
	switch {
	case !ok:
		var err error
		if burned, err = s.burnedAt(ctx, id, now); err != nil {
			return Balance{}, err
		}
		c.setBurn(id, burned, now)
	case refresh && c.claimRefresh(id):
		go func() {
			defer c.refreshed(id)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if b, err := s.burnedAt(ctx, id, now); err == nil {
				c.setBurn(id, b, now)
			}
		}()
	}
	rw := RunwayOf(b.Available, burned, b.AsOf)
	b.BurnRatePerDay, b.DepletesAt = rw.BurnRatePerDay, rw.DepletesAt
	return b, nil
}
