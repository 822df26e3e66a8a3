package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"time"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

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
	if l.keyOnlyIfApplied(p.op) {
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

// keyOnlyIfApplied: a summarized op's refusals take no key either, as the
// ledger keeps no entry of its own for it.
func (l *Ledger) keyOnlyIfApplied(op Op) bool {
	k, ok := op.(KeyOnlyIfApplied)
	return ok && k.KeyOnlyIfApplied() || l.keeper(op) != nil
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
func (o *refusedOp) Apply(context.Context, Batch) (any, error) {
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
		var last *batch
		err = l.db.RunTx(ctx, txo, func(ctx context.Context, tx pgx.Tx) error {
			attempt++
			var b *batch
			var err error
			b, results, err = l.apply(ctx, tx, shardIdx, ops, stored, attempt)
			if b != nil {
				full = b.fullHot
			}
			last = b
			return err
		})
		if err == nil {
			l.committed(last)
		}
		// A unique violation on the idempotency key means another batch
		// committed the same key after we looked: run again and find it.
		if err == nil || !l.isDuplicateKey(err) || dup >= 5 {
			return results, full, retries, err
		}
		retries++
	}
}

// committed tells the stages of the attempt that committed, in load order.
func (l *Ledger) committed(b *batch) {
	if b == nil {
		return
	}
	for _, m := range l.mods {
		if c, ok := b.stages[m.name].(Committer); ok {
			c.Committed()
		}
	}
}

func (l *Ledger) isDuplicateKey(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		return false
	}
	if pgErr.ConstraintName == "ledger_entries_idempotency_key" {
		return true
	}
	for _, m := range l.mods {
		if k, ok := m.Module.(KeyKeeper); ok && pgErr.ConstraintName == k.KeyConstraint() {
			return true
		}
	}
	return false
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
func (l *Ledger) apply(ctx context.Context, tx pgx.Tx, shardIdx int, ops []Op, stored map[string]storedEntry, attempt int) (*batch, []opResult, error) {
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
	// The stages of the modules the batch's ops belong to, and of those
	// they feed, all exist before the first loads, so an earlier stage can
	// hand a later one work (metering tells wallets which wallets a usage
	// event will charge). A batch of debits never runs metering's stage.
	mods := l.activeModules(todo)
	for _, m := range mods {
		b.stages[m.name] = m.NewStage()
	}
	for _, m := range mods {
		if err := b.stages[m.name].Load(ctx, b, todo); err != nil {
			return b, nil, fmt.Errorf("load %s: %w", m.name, err)
		}
	}
	if len(b.holdIDs) > 0 {
		if err := l.lockHolds(ctx, b); err != nil {
			return b, nil, err
		}
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
		results[i] = b.applyOne(ctx, op)
		if results[i].err == nil {
			seen[key] = len(b.entries) - 1
		}
	}
	b.collapse()
	if err := b.checkBalanced(); err != nil {
		return b, nil, err
	}
	if err := l.flush(ctx, b); err != nil {
		return b, nil, err
	}
	for _, m := range mods {
		if err := b.stages[m.name].Flush(ctx, b); err != nil {
			return b, nil, fmt.Errorf("flush %s: %w", m.name, err)
		}
	}
	if l.opts.beforeCommit != nil {
		if err := l.opts.beforeCommit(ctx, tx, attempt); err != nil {
			return b, nil, err
		}
	}
	return b, results, nil
}

// activeModules are the modules, in load order, whose stages a batch of ops
// needs: those the ops belong to, and every module those feed.
func (l *Ledger) activeModules(ops []Op) []registered {
	active := map[string]bool{}
	for _, op := range ops {
		if m, ok := op.(ModuleOp); ok {
			active[m.Module()] = true
		}
	}
	var out []registered
	for _, m := range l.mods { // load order: a feeder before what it feeds
		if !active[m.name] {
			continue
		}
		out = append(out, m)
		for _, f := range m.feeds {
			active[f] = true
		}
	}
	return out
}

func replay(s storedEntry, op Op) opResult {
	if !bytes.Equal(s.fingerprint, op.Fingerprint()) {
		return opResult{err: fmt.Errorf("%w: key %q", ErrIdempotencyConflict, op.Key())}
	}
	return opResult{out: s.outcome()}
}

// Fingerprint hashes a payload's canonical JSON. Ops use it so that the same
// idempotency key with another payload is a conflict.
func Fingerprint(kind string, payload any) []byte {
	raw, err := json.Marshal(payload)
	if err != nil {
		// Payloads are plain structs; failing to encode one is a bug.
		panic("ledger: fingerprint of " + kind + ": " + err.Error())
	}
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write(raw)
	return h.Sum(nil)
}

// lookupKeys finds the ops applied before: in ledger_entries, and a
// summarized op's in its module's rows (KeyKeeper).
func (l *Ledger) lookupKeys(ctx context.Context, ops []Op) (map[string]storedEntry, error) {
	keys := make([]string, 0, len(ops))
	var kept map[KeyKeeper][]string
	for _, op := range ops {
		if k := l.keeper(op); k != nil {
			if kept == nil {
				kept = map[KeyKeeper][]string{}
			}
			kept[k] = append(kept[k], op.Key())
			continue
		}
		keys = append(keys, op.Key())
	}
	out := map[string]storedEntry{}
	for k, ks := range kept {
		found, err := k.LookupKeys(ctx, l.db.Pool, ks)
		if err != nil {
			return nil, fmt.Errorf("look up %s keys: %w", k.Name(), err)
		}
		for key, s := range found {
			out[key] = storedEntry{id: s.Entry, fingerprint: s.Fingerprint, status: StatusPosted, result: s.Result, createdAt: s.CreatedAt.UTC()}
		}
	}
	if len(keys) == 0 {
		return out, nil
	}
	rows, err := l.db.Pool.Query(ctx, lookupKeysSQL, keys)
	if err != nil {
		return nil, fmt.Errorf("look up idempotency keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			key          string
			s            storedEntry
			code, detail *string
			status       string
		)
		if err := rows.Scan(&key, &s.id, &s.fingerprint, &status, &code, &detail, &s.result, &s.createdAt); err != nil {
			return nil, fmt.Errorf("scan idempotency key: %w", err)
		}
		s.status = Status(status)
		if code != nil {
			s.rejection = &Rejection{Code: *code}
			if detail != nil {
				s.rejection.Detail = *detail
			}
		}
		s.createdAt = s.createdAt.UTC()
		out[key] = s
	}
	return out, rows.Err()
}

// lookupKeysSQL finds the entries of keys applied before: one probe of the
// unique key's index per key (a LATERAL subquery, see lockAccountsSQL),
// which `= ANY($1)` is not on a table without statistics.
const lookupKeysSQL = `SELECT e.idempotency_key, e.id, e.fingerprint, e.status, e.reject_code, e.reject_detail, e.result, e.created_at
		FROM unnest($1::TEXT[]) AS k(key)
		CROSS JOIN LATERAL (SELECT * FROM ledger_entries WHERE idempotency_key = k.key OFFSET 0) AS e`
