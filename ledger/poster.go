package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/ratelog"
)

// Options configure the poster.
type Options struct {
	Shards   int           // poster goroutines; ops are routed by ShardKey. Default twice GOMAXPROCS.
	MaxBatch int           // most ops per transaction. Default 1000.
	Linger   time.Duration // how long a batch waits for more ops once the queue is empty. Default 1ms.
	Queue    int           // per-shard queue length; Enqueue blocks beyond it. Default 4×MaxBatch.
	Modules  []Module      // the layers above that take part in batches; New orders them by Feeds
	// HotRows is how many counter rows a hot account gets (see store.go).
	// It must be at least Shards, so that no two shards of a process
	// share a row; default max(32, Shards), at most 256.
	HotRows  int
	Observer Observer
	Log      *slog.Logger
	Tx       pg.TxOptions
	// BatchTimeout bounds one batch's transaction, retries included. Default 30s.
	BatchTimeout time.Duration
	// Clock is the batches' time source (default time.Now); tests move it
	// to reach expiries without sleeping.
	Clock func() time.Time
	// Limits are the counter limits (see amount.go); zero fields mean the
	// defaults.
	Limits Limits

	// beforeCommit lets tests interfere with an attempt just before COMMIT.
	beforeCommit func(ctx context.Context, tx pgx.Tx, attempt int) error
}

// Ledger is the ledger service: the poster and the reads.
type Ledger struct {
	db   *pg.DB
	opts Options
	log  *slog.Logger

	cacheMu sync.RWMutex
	byID    map[AccountID]Account
	byCode  map[[2]string]Account

	limits  Limits
	mods    []registered    // in load order
	modules map[string]bool // names of the registered modules
	// hot holds, per hot account and residue (poster shard mod the
	// account's shards), the counter row batches of this process write
	// when it is not the residue itself: the row a full one rolled over to
	// (see amount.go). Guarded by cacheMu.
	hot map[hotResidue]int

	logs ratelog.Limiter // for failures that repeat while the database is away

	closeMu sync.RWMutex
	closed  bool
	shards  []*shard
	wg      sync.WaitGroup
	queued  atomic.Int64
}

type shard struct {
	idx int
	ch  chan *Pending
}

// New makes a ledger and starts its poster shards. It refuses options
// that would break an invariant of the poster.
func New(db *pg.DB, opts Options) (*Ledger, error) {
	if opts.Shards <= 0 {
		// Each shard is a concurrent transaction; more than the CPUs can
		// run only queues them against each other.
		opts.Shards = 2 * runtime.GOMAXPROCS(0)
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1000
	}
	if opts.Linger <= 0 {
		opts.Linger = time.Millisecond
	}
	if opts.Queue <= 0 {
		opts.Queue = 4 * opts.MaxBatch
	}
	if opts.Observer == nil {
		opts.Observer = NopObserver{}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.BatchTimeout <= 0 {
		opts.BatchTimeout = 30 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.MaxBatch > MaxBatchOps {
		return nil, fmt.Errorf("ledger: MaxBatch %d exceeds %d, the most a batch may carry", opts.MaxBatch, MaxBatchOps)
	}
	limits := opts.Limits.withDefaults()
	if err := limits.validate(); err != nil {
		return nil, err
	}
	if opts.HotRows <= 0 {
		opts.HotRows = max(32, opts.Shards)
	}
	switch {
	case opts.HotRows > maxHotRows:
		return nil, fmt.Errorf("ledger: %d hot counter rows; at most %d", opts.HotRows, maxHotRows)
	case opts.Shards > opts.HotRows:
		return nil, fmt.Errorf("ledger: %d poster shards but %d counter rows per hot account: shards would share rows and queue on them; "+
			"use at most %d shards, or more hot rows", opts.Shards, opts.HotRows, opts.HotRows)
	}
	mods, err := orderModules(opts.Modules)
	if err != nil {
		return nil, err
	}
	l := &Ledger{db: db, opts: opts, log: opts.Log, byID: map[AccountID]Account{}, byCode: map[[2]string]Account{},
		limits: limits, hot: map[hotResidue]int{}, mods: mods, modules: map[string]bool{}}
	for _, m := range mods {
		l.modules[m.name] = true
	}
	for i := 0; i < opts.Shards; i++ {
		s := &shard{idx: i, ch: make(chan *Pending, opts.Queue)}
		l.shards = append(l.shards, s)
		l.wg.Add(1)
		go l.runShard(s)
	}
	return l, nil
}

// Now is the ledger's clock, in UTC at the database's precision.
func (l *Ledger) Now() time.Time { return l.opts.Clock().UTC().Truncate(time.Microsecond) }

// HotRows is how many counter rows the ledger gives a hot account.
func (l *Ledger) HotRows() int { return l.opts.HotRows }

// DB is the ledger's database.
func (l *Ledger) DB() *pg.DB { return l.db }

// QueueDepth is how many ops wait for a batch, over all shards.
func (l *Ledger) QueueDepth() int { return int(l.queued.Load()) }

// Close stops taking ops, applies the ones already queued and returns when
// the last batch has committed (or ctx ends).
func (l *Ledger) Close(ctx context.Context) error {
	l.closeMu.Lock()
	if !l.closed {
		l.closed = true
		for _, s := range l.shards {
			close(s.ch)
		}
	}
	l.closeMu.Unlock()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("drain poster: %w", ctx.Err())
	}
}

// Enqueue hands op to its shard and returns at once. It blocks only while
// the shard's queue is full (back-pressure), until ctx ends.
func (l *Ledger) Enqueue(ctx context.Context, op Op) (*Pending, error) {
	if m, ok := op.(ModuleOp); ok && !l.modules[m.Module()] {
		return nil, fmt.Errorf("ledger: a %s op needs module %q, which this ledger was not built with", op.Kind(), m.Module())
	}
	p := &Pending{op: op, ctx: ctx, done: make(chan struct{})}
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	s := l.shards[op.ShardKey()%uint64(len(l.shards))]
	l.queued.Add(1)
	select {
	case s.ch <- p:
		return p, nil
	case <-ctx.Done():
		l.queued.Add(-1)
		return nil, ctx.Err()
	}
}

// Submit applies op and waits for its outcome.
func (l *Ledger) Submit(ctx context.Context, op Op) (Outcome, error) {
	p, err := l.Enqueue(ctx, op)
	if err != nil {
		return Outcome{}, err
	}
	return p.Wait(ctx)
}

func (l *Ledger) runShard(s *shard) {
	defer l.wg.Done()
	batch := make([]*Pending, 0, l.opts.MaxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		first, ok := <-s.ch
		if !ok {
			return
		}
		batch = append(batch[:0], first)
		open := true
		// Group commit: take what is queued; if the batch is not full, give
		// late arrivals Linger to join before paying for a commit.
		timer.Reset(l.opts.Linger)
	collect:
		for len(batch) < l.opts.MaxBatch {
			select {
			case p, ok := <-s.ch:
				if !ok {
					open = false
					break collect
				}
				batch = append(batch, p)
			case <-timer.C:
				break collect
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		l.queued.Add(-int64(len(batch)))
		l.runBatch(s.idx, batch)
		if !open {
			// The channel reports closed only once its buffer is empty:
			// everything queued before Close has been applied.
			return
		}
	}
}

// Pending is an op on its way through the poster.
type Pending struct {
	op   Op
	ctx  context.Context
	done chan struct{}
	out  Outcome
	err  error
}

// Done is closed once the op's batch committed or failed.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Result returns the outcome; call it after Done is closed.
func (p *Pending) Result() (Outcome, error) { return p.out, p.err }

// Wait waits for the outcome. If ctx ends first, the op may still be
// applied: retrying with the same idempotency key tells.
func (p *Pending) Wait(ctx context.Context) (Outcome, error) {
	select {
	case <-p.done:
		return p.out, p.err
	case <-ctx.Done():
		return Outcome{}, ctx.Err()
	}
}

func (p *Pending) finish(out Outcome, err error) {
	p.out, p.err = out, err
	close(p.done)
}

// WaitPosted waits for every pending op and counts those this call posted
// (not replays of an earlier one): what a sweeper reports as done.
func WaitPosted(ctx context.Context, pend []*Pending) (int, error) {
	n := 0
	for _, p := range pend {
		out, err := p.Wait(ctx)
		if err != nil {
			return n, err
		}
		if out.Status == StatusPosted && !out.Replayed {
			n++
		}
	}
	return n, nil
}

// ShardOf hashes a string (a wallet or customer id) to a shard key.
func ShardOf(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// Result is an op's stored result as its caller gets it: the JSON the
// poster encoded once and stored with the entry — an HTTP handler sends
// these bytes as they are, the same for a replay — and the value they
// hold, decoded only when a Go caller asks.
type Result[T any] struct {
	JSON     json.RawMessage
	Replayed bool // the key was applied before: this is the stored answer
}

// Value decodes the result.
func (r Result[T]) Value() (T, error) {
	var v T
	if err := json.Unmarshal(r.JSON, &v); err != nil {
		return v, fmt.Errorf("decode stored result: %w", err)
	}
	return v, nil
}

// Answer turns what the poster said of an op into its Result: a recorded
// rejection becomes the error (a replayed one keeps Replayed, so a retried
// refusal is marked as a replay too).
func Answer[T any](out Outcome, err error) (Result[T], error) {
	if err != nil {
		return Result[T]{}, err
	}
	r := Result[T]{JSON: out.Result, Replayed: out.Replayed}
	if out.Rejection != nil {
		return Result[T]{Replayed: out.Replayed}, out.Rejection
	}
	return r, nil
}

// Unpack is a Result as (value, replayed, error), for Go callers that want
// the value: Unpack(svc.Debit(ctx, key, id, d)).
func Unpack[T any](r Result[T], err error) (T, bool, error) {
	if err != nil {
		var zero T
		return zero, r.Replayed, err
	}
	v, err := r.Value()
	return v, r.Replayed, err
}
