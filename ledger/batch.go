package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/internal/pg"
)

// Batch is the in-memory state of one transaction attempt of the poster.
// Ops read and change it in order; at the end it is written with a handful of
// multi-row statements. A retried transaction starts from a fresh Batch.
type batch struct {
	tx     pgx.Tx
	ledger *Ledger
	shard  int
	now    time.Time

	accounts map[AccountID]*acct
	byOwner  map[OwnerID][]*acct
	holds    map[HoldID]*holdState
	stages   map[string]Stage

	// declared by ops and stages, locked before apply
	owners   map[OwnerID]struct{}
	declared map[AccountID]struct{}
	holdIDs  map[HoldID]struct{}

	entries  []entryRow
	postings []postingRow
	outbox   []outboxRow
	newAccts []*acct

	cur *opState // the op being applied

	summaries    map[summaryKey]*summaryEntry // summary entries by kind and owner (summary.go)
	summaryOrder []*summaryEntry

	fullHot []hotRowRef // hot rows this batch took to the roll-over mark

	value any // what the last op applied returned, for Preview
}

type acct struct {
	Account         // metadata and current balance (for hot accounts: this shard's delta only)
	loaded  Balance // balance when locked (zero for created and hot accounts)
	created bool    // inserted by this batch
	hot     bool    // sharded: written by increment, never loaded
	row     int     // balance row (shard) this batch writes
	// other holds a hot account's changes to rows other than row: a hold
	// is released on the row that reserved it, whichever shard placed it.
	other   map[int]Balance
	touched bool
}

type entryRow struct {
	id          EntryID
	key         string
	fingerprint []byte
	kind        string
	status      Status
	rejection   *Rejection
	owner       OwnerID
	description string
	metadata    json.RawMessage
	result      json.RawMessage
	summarized  bool // a summarized op's record, for replays within the batch: its entry is a summary's
}

type postingRow struct {
	entry   EntryID
	seq     int
	account AccountID
	shard   int
	asset   string
	side    Side
	pending bool
	amount  Amount
	hold    *HoldID
}

type outboxRow struct {
	id      uuid.UUID
	topic   string
	owner   OwnerID
	entry   EntryID
	payload json.RawMessage
}

// opState is what one op did, kept so it can be undone if the op fails.
type opState struct {
	entry       entryRow
	saved       map[*acct]acctSave
	savedHolds  map[*holdState]Hold
	createdHold []HoldID
	nPostings   int
	nOutbox     int
	nNewAccts   int
	undo        []func()
	summarized  bool          // the op's entry is its batch's summary (summary.go)
	summary     *summaryEntry // the summary it joined, once its owner is known
}

type acctSave struct {
	bal     Balance
	other   map[int]Balance
	touched bool
}

func newBatch(l *Ledger, tx pgx.Tx, shard int, now time.Time) *batch {
	return &batch{
		tx: tx, ledger: l, shard: shard, now: now,
		accounts: map[AccountID]*acct{},
		byOwner:  map[OwnerID][]*acct{},
		holds:    map[HoldID]*holdState{},
		stages:   map[string]Stage{},
		owners:   map[OwnerID]struct{}{},
		declared: map[AccountID]struct{}{},
		holdIDs:  map[HoldID]struct{}{},

		summaries: map[summaryKey]*summaryEntry{},
	}
}

// Tx is the batch's transaction, for stages that read or write their own
// tables. Ops must not query per operation: load what a batch needs in a
// stage's Load, once.
func (b *batch) Tx() pgx.Tx { return b.tx }

// Engine is the engine behind the batch's transaction (PostgreSQL for the
// in-memory batch, which has none).
func (b *batch) Engine() pg.Engine {
	if b.ledger == nil || b.ledger.db == nil {
		return pg.Postgres
	}
	return b.ledger.db.Engine
}

// Now is the batch's clock: one instant for every op of the attempt, so the
// journal orders entries of a batch by the same time.
func (b *batch) Now() time.Time { return b.now }

// Shard is the poster shard running the batch.
func (b *batch) Shard() int { return b.shard }

// Stage is the batch's stage of module m; nil when m is not registered
// (New and Enqueue refuse ops of a module that is not).
func (b *batch) Stage(m Module) Stage { return b.stages[m.Name()] }

// DeclareOwner lets a stage's Load add an owner to lock (an op that only
// learns its wallet from the database, such as a usage event naming a
// customer).
func (b *batch) DeclareOwner(id OwnerID) { b.owners[id] = struct{}{} }

// DeclareAccount lets a stage's Load add an account to lock.
func (b *batch) DeclareAccount(id AccountID) { b.declared[id] = struct{}{} }

// EntryID is the id the current op's entry will have.
func (b *batch) EntryID() EntryID { return b.cur.entry.id }

// Describe sets the current op's journal entry fields.
func (b *batch) Describe(owner OwnerID, description string, metadata json.RawMessage) {
	b.cur.entry.owner = owner
	b.cur.entry.description = description
	b.cur.entry.metadata = metadata
	b.summarize(owner, description)
}

// OnUndo registers f to run if the current op fails after this point, so a
// stage can take back what the op changed in its own state.
func (b *batch) OnUndo(f func()) { b.cur.undo = append(b.cur.undo, f) }

// Account returns a locked or created account with its current in-batch
// balance. Hot accounts are not readable here (their balance lives in rows
// other shards write).
func (b *batch) Account(id AccountID) (Account, bool) {
	a, ok := b.accounts[id]
	if !ok || a.hot {
		return Account{}, false
	}
	return a.Account, true
}

// OwnerAccounts returns the owner's accounts, in creation order.
func (b *batch) OwnerAccounts(owner OwnerID) []Account {
	list := b.byOwner[owner]
	out := make([]Account, len(list))
	for i, a := range list {
		out[i] = a.Account
	}
	return out
}

// CreateAccount adds an account, inserted when the batch is written.
func (b *batch) CreateAccount(spec AccountSpec) (Account, error) {
	if spec.Hot {
		return Account{}, fmt.Errorf("create %s: hot accounts are made with EnsureAccount", spec.Code)
	}
	if err := spec.validate(); err != nil {
		return Account{}, err
	}
	if spec.ID == (AccountID{}) {
		spec.ID = NewAccountID()
	}
	if _, dup := b.accounts[spec.ID]; dup {
		return Account{}, fmt.Errorf("create %s: account id %s exists", spec.Code, spec.ID)
	}
	a := &acct{created: true, Account: Account{
		ID: spec.ID, Code: spec.Code, Asset: spec.Asset, Owner: spec.Owner, Normal: spec.Normal,
		NoOverdraft: spec.NoOverdraft, Shards: 1, Metadata: spec.Metadata, CreatedAt: b.now,
	}}
	b.accounts[a.ID] = a
	if !a.Owner.IsZero() {
		b.byOwner[a.Owner] = append(b.byOwner[a.Owner], a)
	}
	b.newAccts = append(b.newAccts, a)
	return a.Account, nil
}

func (b *batch) lookup(id AccountID) (*acct, error) {
	if a, ok := b.accounts[id]; ok {
		return a, nil
	}
	if meta, ok := b.ledger.cachedByID(id); ok && meta.Shards > 1 {
		a := &acct{hot: true, Account: meta, row: b.ledger.hotRow(meta, b.shard)}
		a.Balance = Balance{}
		b.accounts[id] = a
		return a, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrNotLocked, id)
}

// Emit writes an outbox row in the batch's transaction: the side effect is
// recorded exactly when the change that causes it commits.
func (b *batch) Emit(topic string, owner OwnerID, payload any) error {
	raw, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("outbox %s: %w", topic, err)
	}
	b.outbox = append(b.outbox, outboxRow{id: newOutboxID(), topic: topic, owner: owner, entry: b.cur.entry.id, payload: raw})
	return nil
}

// begin starts an op.
func (b *batch) begin(op Op) {
	b.cur = &opState{
		entry: entryRow{id: NewEntryID(), key: op.Key(), fingerprint: op.Fingerprint(), kind: op.Kind()},
		saved: map[*acct]acctSave{}, savedHolds: map[*holdState]Hold{},
		nPostings: len(b.postings), nOutbox: len(b.outbox), nNewAccts: len(b.newAccts),
		summarized: b.ledger.keeper(op) != nil,
	}
}

// abort undoes everything the current op did.
func (b *batch) abort() {
	c := b.cur
	for i := len(c.undo) - 1; i >= 0; i-- {
		c.undo[i]()
	}
	for a, s := range c.saved {
		a.Balance, a.other, a.touched = s.bal, s.other, s.touched
	}
	for h, saved := range c.savedHolds {
		h.Hold = saved
	}
	for _, id := range c.createdHold {
		delete(b.holds, id)
	}
	for _, a := range b.newAccts[c.nNewAccts:] {
		delete(b.accounts, a.ID)
		if !a.Owner.IsZero() {
			list := b.byOwner[a.Owner]
			for i, x := range list {
				if x == a {
					b.byOwner[a.Owner] = append(list[:i:i], list[i+1:]...)
					break
				}
			}
		}
	}
	b.newAccts = b.newAccts[:c.nNewAccts]
	b.postings = b.postings[:c.nPostings]
	b.outbox = b.outbox[:c.nOutbox]
}

// finish records the op's entry, posted or rejected.
func (b *batch) finish(result json.RawMessage, rej *Rejection) entryRow {
	if rej == nil {
		b.summarize(b.cur.entry.owner, b.cur.entry.description) // an op that never described itself
	}
	e := b.cur.entry
	e.summarized = b.cur.summary != nil
	if rej != nil {
		e.status, e.rejection = StatusRejected, rej
	} else {
		e.status, e.result = StatusPosted, result
	}
	b.entries = append(b.entries, e)
	b.cur = nil
	return e
}

// checkBalanced asserts before anything is written what Verify checks
// after: the postings of every entry sum to zero per asset, posted and
// pending apart. Post and the hold methods keep it so; this catches an op,
// or a later change to them, that would write an unbalanced entry — as a
// failed batch, split down to that op, rather than a row in the journal.
func (b *batch) checkBalanced() error {
	type key struct {
		entry   EntryID
		asset   string
		pending bool
	}
	sums := make(map[key]Amount, len(b.entries))
	for _, p := range b.postings {
		k := key{p.entry, p.asset, p.pending}
		if p.side == Debit {
			sums[k] = sums[k].Add(p.amount)
		} else {
			sums[k] = sums[k].Sub(p.amount)
		}
	}
	for k, s := range sums {
		if !s.IsZero() {
			return fmt.Errorf("%w: entry %s is off by %s %s (pending %v)", ErrUnbalanced, k.entry, s, k.asset, k.pending)
		}
	}
	return nil
}

// applyOne applies op against the batch's state as it stands: its result
// is encoded and its entry recorded; a rejection is recorded under its key
// (unless it must not be: KeyOnlyIfApplied) with everything the op did
// undone; any other error undoes the op and fails only it, unrecorded.
func (b *batch) applyOne(ctx context.Context, op Op) opResult {
	b.begin(op)
	res, err := op.Apply(ctx, b)
	var rej *Rejection
	switch {
	case err == nil:
		raw, merr := json.Marshal(res)
		if merr != nil {
			b.abort()
			b.cur = nil
			return opResult{err: fmt.Errorf("encode result: %w", merr)}
		}
		e := b.finish(raw, nil)
		b.value = res
		return opResult{out: Outcome{EntryID: e.id, Status: StatusPosted, Result: raw, CreatedAt: b.now}}
	case errors.As(err, &rej) && !b.ledger.keyOnlyIfApplied(op):
		b.abort()
		e := b.finish(nil, rej)
		return opResult{out: Outcome{EntryID: e.id, Status: StatusRejected, Rejection: rej, CreatedAt: b.now}}
	default:
		b.abort()
		b.cur = nil
		return opResult{err: err}
	}
}
