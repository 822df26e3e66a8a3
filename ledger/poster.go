package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/ratelog"
)

// Options configure the poster.
type Options struct {
	Shards   int           // poster goroutines; ops are routed by ShardKey. Default twice GOMAXPROCS.
	MaxBatch int           // most ops per transaction. Default 1000.
	Linger   time.Duration // how long a batch waits for more ops once the queue is empty. Default 1ms.
	Queue    int           // per-shard queue length; Enqueue blocks beyond it. Default 4×MaxBatch.
	Modules  []Module      // stages of the layers above, in load order
	Observer Observer
	Log      *slog.Logger
	Tx       pg.TxOptions
	// BatchTimeout bounds one batch's transaction, retries included. Default 30s.
	BatchTimeout time.Duration
	// Clock is the batches' time source (default time.Now); tests move it
	// to reach expiries without sleeping.
	Clock func() time.Time
	// Limits are the counter limits (see limits.go); zero fields mean the
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

	limits Limits
	// hot holds, per hot account and residue (poster shard mod the
	// account's shards), the counter row batches of this process write
	// when it is not the residue itself: the row a full one rolled over to
	// (see limits.go). Guarded by cacheMu.
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
		return nil, fmt.Errorf("ledger: MaxBatch %d exceeds %d, the most a batch may carry (see limits.go)", opts.MaxBatch, MaxBatchOps)
	}
	limits := opts.Limits.withDefaults()
	if err := limits.validate(); err != nil {
		return nil, err
	}
	l := &Ledger{db: db, opts: opts, log: opts.Log, byID: map[AccountID]Account{}, byCode: map[[2]string]Account{},
		limits: limits, hot: map[hotResidue]int{}}
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

type opResult struct {
	out Outcome
	err error
}

func (l *Ledger) runBatch(shardIdx int, batch []*Pending) {
	// Ops whose caller already gave up have not been applied: drop them.
	live := batch[:0:0]
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.finish(Outcome{}, err)
			continue
		}
		live = append(live, p)
	}
	if len(live) > 0 {
		// A fault nobody classified may be one operation's (a bug its data
		// reaches) or everyone's (a schema that does not match): splitting
		// finds the one in about 2·log2(n) transactions; the budget stops
		// a batch that fails whatever its size from costing n of them.
		budget := 2*bits.Len(uint(len(live))) + 2
		l.commit(shardIdx, live, &budget)
	}
}

// commit applies ps in one transaction and answers each. If the database
// refuses the data of the batch (fault.Invalid: a value it cannot store, a
// constraint), one operation of it is at fault, not all: the batch is split
// in halves, each committed on its own, down to the operation(s) at fault,
// which are refused alone (refuse). A fault nobody classified is split the
// same way while budget lasts, and the operations it stays with fail with
// it, unrecorded: their callers retry them, and the NATS consumer parks an
// event that keeps failing. The halves keep the submission order, so one
// customer's operations still apply in order. Any other failure (the
// database unreachable) fails the whole batch: nothing of it was written.
func (l *Ledger) commit(shardIdx int, ps []*Pending, budget *int) {
	ops := make([]Op, len(ps))
	for i, p := range ps {
		ops[i] = p.op
	}
	start := time.Now()
	results, full, retries, err := l.transact(shardIdx, ops)
	if err == nil {
		l.opts.Observer.BatchCommitted(shardIdx, len(ops), time.Since(start), retries)
		if len(full) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), l.opts.BatchTimeout)
			l.rollHot(ctx, full)
			cancel()
		}
		for i, p := range ps {
			p.finish(results[i].out, results[i].err)
		}
		return
	}
	kind := pg.KindOf(err)
	switch {
	case kind == fault.Invalid && len(ps) == 1:
		l.refuse(shardIdx, ps[0], err)
		return
	case kind == fault.Invalid || kind == fault.Internal && len(ps) > 1 && *budget > 0:
		if kind == fault.Internal {
			*budget -= 2
		}
		l.log.Debug("batch failed; splitting it to find the operation at fault",
			"shard", shardIdx, "ops", len(ops), "fault", kind, "err", err)
		mid := len(ps) / 2
		l.commit(shardIdx, ps[:mid], budget)
		l.commit(shardIdx, ps[mid:], budget)
		return
	}
	l.logs.Log(l.log, slog.LevelError, "batch failed", "shard", shardIdx, "ops", len(ops), "fault", kind, "err", err)
	l.opts.Observer.BatchFailed(shardIdx, len(ops), err)
	for _, p := range ps {
		p.finish(Outcome{}, fmt.Errorf("ledger batch: %w", err))
	}
}

// refuse answers an operation whose data the database refused (err) with a
// rejection, recorded under its key like any rejection so that a retry
// gets the same answer — unless the op's refusals must not take its key
// (KeyOnlyIfApplied), or the key itself is what the database refused. Then
// the rejection is the op's error.
func (l *Ledger) refuse(shardIdx int, p *Pending, cause error) {
	rej := DataRefusal(cause)
	l.log.Warn("operation refused by the database", "shard", shardIdx, "kind", p.op.Kind(),
		"key", cleanText(p.op.Key(), 200), "code", rej.Code, "detail", rej.Detail)
	l.opts.Observer.OpRefused(shardIdx, rej.Code)
	if keyOnlyIfApplied(p.op) {
		p.finish(Outcome{}, rej)
		return
	}
	results, _, _, err := l.transact(shardIdx, []Op{&refusedOp{op: p.op, rej: rej}})
	if err != nil {
		if pg.KindOf(err) != fault.Invalid {
			p.finish(Outcome{}, fmt.Errorf("ledger batch: %w", err))
			return
		}
		p.finish(Outcome{}, rej)
		return
	}
	p.finish(results[0].out, results[0].err)
}

// KeyOnlyIfApplied is implemented by ops whose refusals must not take
// their idempotency key: a usage event refused for its content is recorded
// elsewhere (event_rejections), and its corrected resend, under the same
// event id, must still apply. Such an op's rejections — returned by its
// Apply or found by the database — come back as its error, and nothing is
// recorded under its key.
type KeyOnlyIfApplied interface {
	KeyOnlyIfApplied() bool
}

func keyOnlyIfApplied(op Op) bool {
	k, ok := op.(KeyOnlyIfApplied)
	return ok && k.KeyOnlyIfApplied()
}

// refusedOp records op's refusal under op's key and fingerprint.
type refusedOp struct {
	op  Op
	rej *Rejection
}

func (o *refusedOp) Key() string         { return o.op.Key() }
func (o *refusedOp) Fingerprint() []byte { return o.op.Fingerprint() }
func (o *refusedOp) Kind() string        { return o.op.Kind() }
func (o *refusedOp) ShardKey() uint64    { return o.op.ShardKey() }
func (o *refusedOp) Declare(*Decl)       {}
func (o *refusedOp) Apply(context.Context, *Batch) (any, error) {
	return nil, o.rej
}

// transact runs ops in one transaction, retried on conflicts, and returns
// each op's result, the hot rows the batch took to the roll-over mark and
// how many attempts were retried.
func (l *Ledger) transact(shardIdx int, ops []Op) (results []opResult, full []hotRowRef, retries int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.BatchTimeout)
	defer cancel()
	txo := l.opts.Tx
	userRetry := txo.OnRetry
	txo.OnRetry = func(n int, err error) {
		retries++
		if userRetry != nil {
			userRetry(n, err)
		}
	}
	attempt := 0
	for dup := 0; ; dup++ {
		// Which keys were applied before? Read before the transaction on
		// purpose: the unique constraint, not this read, is the final word,
		// and keeping the read out of the transaction spares PostgreSQL
		// predicate locks on the key index and the batch a second connection.
		var stored map[string]storedEntry
		stored, err = l.lookupKeys(ctx, ops)
		if err != nil {
			return nil, nil, retries, err
		}
		err = l.db.RunTx(ctx, txo, func(ctx context.Context, tx pgx.Tx) error {
			attempt++
			var b *Batch
			var err error
			b, results, err = l.apply(ctx, tx, shardIdx, ops, stored, attempt)
			if b != nil {
				full = b.fullHot
			}
			return err
		})
		// A unique violation on the idempotency key means another batch
		// committed the same key after we looked: run again and find it.
		if err == nil || !isDuplicateKey(err) || dup >= 5 {
			return results, full, retries, err
		}
		retries++
	}
}

func isDuplicateKey(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "ledger_entries_idempotency_key"
}

type storedEntry struct {
	id          EntryID
	fingerprint []byte
	status      Status
	rejection   *Rejection
	result      json.RawMessage
	createdAt   time.Time
}

func (s storedEntry) outcome() Outcome {
	return Outcome{EntryID: s.id, Status: s.status, Rejection: s.rejection, Result: s.result, CreatedAt: s.createdAt, Replayed: true}
}

// apply is one transaction attempt for a batch.
func (l *Ledger) apply(ctx context.Context, tx pgx.Tx, shardIdx int, ops []Op, stored map[string]storedEntry, attempt int) (*Batch, []opResult, error) {
	b := newBatch(l, tx, shardIdx, l.Now())
	var todo []Op
	for _, op := range ops {
		if _, ok := stored[op.Key()]; ok {
			continue
		}
		todo = append(todo, op)
		var d Decl
		op.Declare(&d)
		for _, o := range d.owners {
			b.owners[o] = struct{}{}
		}
		for _, a := range d.accounts {
			b.declared[a] = struct{}{}
		}
		for _, h := range d.holds {
			b.holdIDs[h] = struct{}{}
		}
	}
	// Every stage exists before the first loads, so an earlier stage can
	// hand a later one work (metering tells wallets which wallets a usage
	// event will charge).
	for _, m := range l.opts.Modules {
		b.stages[m.Name()] = m.NewStage()
	}
	for _, m := range l.opts.Modules {
		if err := b.stages[m.Name()].Load(ctx, b, todo); err != nil {
			return b, nil, fmt.Errorf("load %s: %w", m.Name(), err)
		}
	}
	if err := l.lockHolds(ctx, b); err != nil {
		return b, nil, err
	}
	if err := l.lockAccounts(ctx, b); err != nil {
		return b, nil, err
	}

	now := b.now
	results := make([]opResult, len(ops))
	seen := map[string]int{} // key -> index of the entry recorded in this batch
	for i, op := range ops {
		key := op.Key()
		if s, ok := stored[key]; ok {
			results[i] = replay(s, op)
			continue
		}
		if j, ok := seen[key]; ok {
			e := b.entries[j]
			results[i] = replay(storedEntry{id: e.id, fingerprint: e.fingerprint, status: e.status,
				rejection: e.rejection, result: e.result, createdAt: now}, op)
			continue
		}
		b.begin(op)
		res, err := op.Apply(ctx, b)
		var rej *Rejection
		switch {
		case err == nil:
			raw, merr := json.Marshal(res)
			if merr != nil {
				b.abort()
				b.cur = nil
				results[i] = opResult{err: fmt.Errorf("encode result: %w", merr)}
				continue
			}
			e := b.finish(raw, nil)
			seen[key] = len(b.entries) - 1
			results[i] = opResult{out: Outcome{EntryID: e.id, Status: StatusPosted, Result: raw, CreatedAt: now}}
		case errors.As(err, &rej) && !keyOnlyIfApplied(op):
			b.abort()
			e := b.finish(nil, rej)
			seen[key] = len(b.entries) - 1
			results[i] = opResult{out: Outcome{EntryID: e.id, Status: StatusRejected, Rejection: rej, CreatedAt: now}}
		default:
			b.abort()
			b.cur = nil
			results[i] = opResult{err: err}
		}
	}
	if err := l.flush(ctx, b); err != nil {
		return b, nil, err
	}
	for _, m := range l.opts.Modules {
		if err := b.stages[m.Name()].Flush(ctx, b); err != nil {
			return b, nil, fmt.Errorf("flush %s: %w", m.Name(), err)
		}
	}
	if l.opts.beforeCommit != nil {
		if err := l.opts.beforeCommit(ctx, tx, attempt); err != nil {
			return b, nil, err
		}
	}
	return b, results, nil
}

func replay(s storedEntry, op Op) opResult {
	if !bytes.Equal(s.fingerprint, op.Fingerprint()) {
		return opResult{err: fmt.Errorf("%w: key %q", ErrIdempotencyConflict, op.Key())}
	}
	return opResult{out: s.outcome()}
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
