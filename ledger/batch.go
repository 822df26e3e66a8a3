package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Batch is the in-memory state of one transaction attempt of the poster.
// Ops read and change it in order; at the end it is written with a handful of
// multi-row statements. A retried transaction starts from a fresh Batch.
type Batch struct {
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

	fullHot []hotRowRef // hot rows this batch took to the roll-over mark
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

// HoldLeg is one reservation of a hold: Amount pending from Debit to Credit.
// The rows are the counter rows the reservation went to (non-zero only on
// hot accounts); the release must take it off the same rows.
type HoldLeg struct {
	Debit     AccountID `json:"debit_account_id"`
	Credit    AccountID `json:"credit_account_id"`
	Amount    Amount    `json:"amount"`
	DebitRow  int       `json:"debit_row,omitempty"`
	CreditRow int       `json:"credit_row,omitempty"`
}

// Hold is a pending transfer.
type Hold struct {
	ID        HoldID          `json:"id"`
	Owner     OwnerID         `json:"owner_id"`
	EntryID   EntryID         `json:"entry_id"`
	Asset     string          `json:"asset"`
	Amount    Amount          `json:"amount"`
	Captured  Amount          `json:"captured"`
	Status    HoldStatus      `json:"status"`
	Legs      []HoldLeg       `json:"legs"`
	ExpiresAt *time.Time      `json:"expires_at,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	ClosedAt  *time.Time      `json:"closed_at,omitempty"`
	ClosedBy  *EntryID        `json:"closed_by,omitempty"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
}

// HoldStatus is a hold's state.
type HoldStatus string

const (
	HoldPending  HoldStatus = "pending"
	HoldCaptured HoldStatus = "captured"
	HoldVoided   HoldStatus = "voided"
	HoldExpired  HoldStatus = "expired"
)

type holdState struct {
	Hold
	isNew bool
	dirty bool
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
}

type acctSave struct {
	bal     Balance
	other   map[int]Balance
	touched bool
}

func newBatch(l *Ledger, tx pgx.Tx, shard int, now time.Time) *Batch {
	return &Batch{
		tx: tx, ledger: l, shard: shard, now: now,
		accounts: map[AccountID]*acct{},
		byOwner:  map[OwnerID][]*acct{},
		holds:    map[HoldID]*holdState{},
		stages:   map[string]Stage{},
		owners:   map[OwnerID]struct{}{},
		declared: map[AccountID]struct{}{},
		holdIDs:  map[HoldID]struct{}{},
	}
}

// Tx is the batch's transaction, for stages that read or write their own
// tables. Ops must not query per operation: load what a batch needs in a
// stage's Load, once.
func (b *Batch) Tx() pgx.Tx { return b.tx }

// Now is the batch's clock: one instant for every op of the attempt, so the
// journal orders entries of a batch by the same time.
func (b *Batch) Now() time.Time { return b.now }

// Shard is the poster shard running the batch.
func (b *Batch) Shard() int { return b.shard }

// Stage returns the batch's stage of the named module.
func (b *Batch) Stage(name string) Stage { return b.stages[name] }

// DeclareOwner lets a stage's Load add an owner to lock (an op that only
// learns its wallet from the database, such as a usage event naming a
// customer).
func (b *Batch) DeclareOwner(id OwnerID) { b.owners[id] = struct{}{} }

// DeclareAccount lets a stage's Load add an account to lock.
func (b *Batch) DeclareAccount(id AccountID) { b.declared[id] = struct{}{} }

// EntryID is the id the current op's entry will have.
func (b *Batch) EntryID() EntryID { return b.cur.entry.id }

// Describe sets the current op's journal entry fields.
func (b *Batch) Describe(owner OwnerID, description string, metadata json.RawMessage) {
	b.cur.entry.owner = owner
	b.cur.entry.description = description
	b.cur.entry.metadata = metadata
}

// OnUndo registers f to run if the current op fails after this point, so a
// stage can take back what the op changed in its own state.
func (b *Batch) OnUndo(f func()) { b.cur.undo = append(b.cur.undo, f) }

// Account returns a locked or created account with its current in-batch
// balance. Hot accounts are not readable here (their balance lives in rows
// other shards write).
func (b *Batch) Account(id AccountID) (Account, bool) {
	a, ok := b.accounts[id]
	if !ok || a.hot {
		return Account{}, false
	}
	return a.Account, true
}

// OwnerAccounts returns the owner's accounts, in creation order.
func (b *Batch) OwnerAccounts(owner OwnerID) []Account {
	list := b.byOwner[owner]
	out := make([]Account, len(list))
	for i, a := range list {
		out[i] = a.Account
	}
	return out
}

// CreateAccount adds an account, inserted when the batch is written.
func (b *Batch) CreateAccount(spec AccountSpec) (Account, error) {
	if spec.Shards > 1 {
		return Account{}, fmt.Errorf("create %s: hot accounts are made with EnsureAccount", spec.Code)
	}
	spec.Shards = 1
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

func (b *Batch) lookup(id AccountID) (*acct, error) {
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

func (b *Batch) save(a *acct) {
	if _, ok := b.cur.saved[a]; !ok {
		var other map[int]Balance
		if a.other != nil {
			other = make(map[int]Balance, len(a.other))
			for k, v := range a.other {
				other[k] = v
			}
		}
		b.cur.saved[a] = acctSave{bal: a.Balance, other: other, touched: a.touched}
	}
}

// move applies one posting's effect to the in-memory counters of one row.
func (b *Batch) move(a *acct, row int, side Side, pending bool, amt Amount) {
	b.save(a)
	a.touched = true
	bal := &a.Balance
	var o Balance
	if row != a.row {
		if a.other == nil {
			a.other = map[int]Balance{}
		}
		o = a.other[row]
		bal = &o
	}
	switch {
	case side == Debit && !pending:
		bal.DebitsPosted = bal.DebitsPosted.Add(amt)
	case side == Credit && !pending:
		bal.CreditsPosted = bal.CreditsPosted.Add(amt)
	case side == Debit && pending:
		bal.DebitsPending = bal.DebitsPending.Add(amt)
	default:
		bal.CreditsPending = bal.CreditsPending.Add(amt)
	}
	if row != a.row {
		a.other[row] = o
	}
}

// stage adds a posting on the batch's own row of the account.
func (b *Batch) stage(a *acct, side Side, pending bool, amt Amount, hold *HoldID) {
	b.stageRow(a, a.row, side, pending, amt, hold)
}

func (b *Batch) stageRow(a *acct, row int, side Side, pending bool, amt Amount, hold *HoldID) {
	b.move(a, row, side, pending, amt)
	b.postings = append(b.postings, postingRow{
		entry: b.cur.entry.id, seq: len(b.postings) - b.cur.nPostings, account: a.ID, shard: row,
		asset: a.Asset, side: side, pending: pending, amount: amt, hold: hold,
	})
}

// checkAccounts refuses a state in which a no-overdraft account went below
// zero, or a counter reached its limit (see limits.go). It is checked after
// all postings of a call, so a transfer out of and back into one account in
// the same call is judged by its net effect.
func (b *Batch) checkAccounts(touched []*acct) *Rejection {
	lim := b.ledger.limits
	for _, a := range touched {
		if a.hot {
			if c := overLimit(a.Balance, lim.HotBatchDelta); c != "" {
				return Reject(CodeLimitExceeded, "this batch's change of %s (%s) would reach the ledger's limit of %s per batch; send it again",
					a.Code, a.Asset, lim.HotBatchDelta)
			}
			for _, o := range a.other {
				if c := overLimit(o, lim.HotBatchDelta); c != "" {
					return Reject(CodeLimitExceeded, "this batch's change of %s (%s) would reach the ledger's limit of %s per batch; send it again",
						a.Code, a.Asset, lim.HotBatchDelta)
				}
			}
			continue
		}
		if c := overLimit(a.Balance, lim.Counter); c != "" {
			return Reject(CodeLimitExceeded, "account %s (%s) would reach the ledger's limit of %s on %s",
				a.Code, a.Asset, lim.Counter, c)
		}
		if !a.NoOverdraft {
			continue
		}
		if a.Balance.Available(a.Normal).IsNegative() {
			return Reject(CodeOverdraft, "account %s (%s) would be overdrawn by %s",
				a.Code, a.Asset, a.Balance.Available(a.Normal).Neg())
		}
		if a.Normal == Credit && a.CreditsPending.IsNegative() || a.Normal == Debit && a.DebitsPending.IsNegative() {
			return Reject(CodeOverdraft, "account %s: pending below zero", a.Code)
		}
	}
	return nil
}

// Post writes balanced postings into the current op's entry. Either all of
// them apply or none: an unbalanced set is an error, an overdraft a
// *Rejection, and in both cases the batch is left as it was.
func (b *Batch) Post(ps ...Posting) error {
	if len(ps) == 0 {
		return nil
	}
	sums := map[string]Amount{}
	accts := make([]*acct, len(ps))
	for i, p := range ps {
		if !p.Amount.IsPositive() {
			return fmt.Errorf("posting %d: amount %s must be positive", i, p.Amount)
		}
		if p.Side != Debit && p.Side != Credit {
			return fmt.Errorf("posting %d: no side", i)
		}
		a, err := b.lookup(p.Account)
		if err != nil {
			return err
		}
		accts[i] = a
		if p.Side == Debit {
			sums[a.Asset] = sums[a.Asset].Add(p.Amount)
		} else {
			sums[a.Asset] = sums[a.Asset].Sub(p.Amount)
		}
	}
	for asset, s := range sums {
		if !s.IsZero() {
			return fmt.Errorf("%w: %s off by %s", ErrUnbalanced, asset, s)
		}
	}
	mark := b.mark()
	for i, p := range ps {
		b.stage(accts[i], p.Side, false, p.Amount, nil)
	}
	if rej := b.checkAccounts(accts); rej != nil {
		b.rollbackTo(mark)
		return rej
	}
	return nil
}

// mark and rollbackTo undo part of an op (a Post that overdrew) without
// undoing what the op did before it.
type mark struct{ postings int }

func (b *Batch) mark() mark { return mark{postings: len(b.postings)} }

func (b *Batch) rollbackTo(m mark) {
	// Reverse the postings staged since the mark.
	for i := len(b.postings) - 1; i >= m.postings; i-- {
		p := b.postings[i]
		a := b.accounts[p.account]
		b.move(a, p.shard, p.side, p.pending, p.amount.Neg())
	}
	b.postings = b.postings[:m.postings]
}

// Hold returns a locked hold.
func (b *Batch) Hold(id HoldID) (Hold, bool) {
	h, ok := b.holds[id]
	if !ok {
		return Hold{}, false
	}
	return h.Hold, true
}

// HoldSpec describes a hold to place.
type HoldSpec struct {
	ID        HoldID
	Owner     OwnerID
	Legs      []HoldLeg
	ExpiresAt *time.Time
	Metadata  json.RawMessage
}

// PlaceHold reserves each leg's amount on the pending counters.
func (b *Batch) PlaceHold(spec HoldSpec) (Hold, error) {
	if len(spec.Legs) == 0 {
		return Hold{}, fmt.Errorf("hold %s has no legs", spec.ID)
	}
	if _, exists := b.holds[spec.ID]; exists {
		return Hold{}, fmt.Errorf("hold %s exists", spec.ID)
	}
	var (
		total Amount
		asset string
		touch []*acct
	)
	for i, leg := range spec.Legs {
		if !leg.Amount.IsPositive() {
			return Hold{}, fmt.Errorf("hold leg %d: amount must be positive", i)
		}
		d, err := b.lookup(leg.Debit)
		if err != nil {
			return Hold{}, err
		}
		c, err := b.lookup(leg.Credit)
		if err != nil {
			return Hold{}, err
		}
		if d.Asset != c.Asset || (asset != "" && d.Asset != asset) {
			return Hold{}, fmt.Errorf("%w: hold legs mix assets", ErrUnbalanced)
		}
		asset = d.Asset
		total = total.Add(leg.Amount)
		touch = append(touch, d, c)
	}
	id := spec.ID
	m := b.mark()
	legs := make([]HoldLeg, len(spec.Legs))
	for i, leg := range spec.Legs {
		d, c := touch[2*i], touch[2*i+1]
		leg.DebitRow, leg.CreditRow = d.row, c.row
		legs[i] = leg
		b.stage(d, Debit, true, leg.Amount, &id)
		b.stage(c, Credit, true, leg.Amount, &id)
	}
	spec.Legs = legs
	if rej := b.checkAccounts(touch); rej != nil {
		b.rollbackTo(m)
		return Hold{}, rej
	}
	h := &holdState{isNew: true, dirty: true, Hold: Hold{
		ID: id, Owner: spec.Owner, EntryID: b.cur.entry.id, Asset: asset, Amount: total,
		Status: HoldPending, Legs: spec.Legs, ExpiresAt: spec.ExpiresAt, CreatedAt: b.now, Metadata: spec.Metadata,
	}}
	b.holds[id] = h
	b.cur.createdHold = append(b.cur.createdHold, id)
	return h.Hold, nil
}

func (b *Batch) openHold(id HoldID) (*holdState, error) {
	h, ok := b.holds[id]
	if !ok {
		return nil, Reject(CodeHoldNotFound, "hold %s not found", id)
	}
	if h.Status != HoldPending {
		return nil, Reject(CodeHoldClosed, "hold %s is already %s", id, h.Status)
	}
	return h, nil
}

func (b *Batch) saveHold(h *holdState) {
	if _, ok := b.cur.savedHolds[h]; !ok {
		b.cur.savedHolds[h] = h.Hold
	}
}

// release takes every leg's reservation off the pending counters.
func (b *Batch) release(h *holdState) []*acct {
	var touch []*acct
	id := h.ID
	for _, leg := range h.Legs {
		d, c := b.accounts[leg.Debit], b.accounts[leg.Credit]
		if d == nil {
			d, _ = b.lookup(leg.Debit)
		}
		if c == nil {
			c, _ = b.lookup(leg.Credit)
		}
		b.stageRow(d, leg.DebitRow, Debit, true, leg.Amount.Neg(), &id)
		b.stageRow(c, leg.CreditRow, Credit, true, leg.Amount.Neg(), &id)
		touch = append(touch, d, c)
	}
	return touch
}

// CaptureHold posts amount of the hold (all of it when amount is nil),
// spread over its legs in order, and releases the rest. A hold past its
// expiry can no longer be captured.
func (b *Batch) CaptureHold(id HoldID, amount *Amount) (Hold, error) {
	h, err := b.openHold(id)
	if err != nil {
		return Hold{}, err
	}
	if h.ExpiresAt != nil && !b.now.Before(*h.ExpiresAt) {
		return Hold{}, Reject(CodeHoldClosed, "hold %s expired at %s", id, h.ExpiresAt.Format(time.RFC3339))
	}
	want := h.Amount
	if amount != nil {
		want = *amount
	}
	if want.IsNegative() {
		return Hold{}, fmt.Errorf("capture amount must not be negative")
	}
	if want.Cmp(h.Amount) > 0 {
		return Hold{}, Reject(CodeHoldExceeded, "capture %s exceeds the held %s", want, h.Amount)
	}
	if err := b.ensureLegs(h); err != nil {
		return Hold{}, err
	}
	m := b.mark()
	touch := b.release(h)
	left := want
	for _, leg := range h.Legs {
		if !left.IsPositive() {
			break
		}
		part := leg.Amount.Min(left)
		left = left.Sub(part)
		b.stage(b.accounts[leg.Debit], Debit, false, part, nil)
		b.stage(b.accounts[leg.Credit], Credit, false, part, nil)
	}
	if rej := b.checkAccounts(touch); rej != nil {
		b.rollbackTo(m)
		return Hold{}, rej
	}
	b.closeHold(h, HoldCaptured, want)
	return h.Hold, nil
}

// VoidHold releases the whole hold. expired marks a release by the expiry
// sweeper rather than by a caller.
func (b *Batch) VoidHold(id HoldID, expired bool) (Hold, error) {
	h, err := b.openHold(id)
	if err != nil {
		return Hold{}, err
	}
	if err := b.ensureLegs(h); err != nil {
		return Hold{}, err
	}
	b.release(h)
	st := HoldVoided
	if expired {
		st = HoldExpired
	}
	b.closeHold(h, st, Zero)
	return h.Hold, nil
}

func (b *Batch) ensureLegs(h *holdState) error {
	for _, leg := range h.Legs {
		if _, err := b.lookup(leg.Debit); err != nil {
			return err
		}
		if _, err := b.lookup(leg.Credit); err != nil {
			return err
		}
	}
	return nil
}

func (b *Batch) closeHold(h *holdState, st HoldStatus, captured Amount) {
	b.saveHold(h)
	now, entry := b.now, b.cur.entry.id
	h.Status, h.Captured, h.ClosedAt, h.ClosedBy, h.dirty = st, captured, &now, &entry, true
}

// Emit writes an outbox row in the batch's transaction: the side effect is
// recorded exactly when the change that causes it commits.
func (b *Batch) Emit(topic string, owner OwnerID, payload any) error {
	raw, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("outbox %s: %w", topic, err)
	}
	b.outbox = append(b.outbox, outboxRow{id: newOutboxID(), topic: topic, owner: owner, entry: b.cur.entry.id, payload: raw})
	return nil
}

// begin starts an op.
func (b *Batch) begin(op Op) {
	b.cur = &opState{
		entry: entryRow{id: NewEntryID(), key: op.Key(), fingerprint: op.Fingerprint(), kind: op.Kind()},
		saved: map[*acct]acctSave{}, savedHolds: map[*holdState]Hold{},
		nPostings: len(b.postings), nOutbox: len(b.outbox), nNewAccts: len(b.newAccts),
	}
}

// abort undoes everything the current op did.
func (b *Batch) abort() {
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
func (b *Batch) finish(result json.RawMessage, rej *Rejection) entryRow {
	e := b.cur.entry
	if rej != nil {
		e.status, e.rejection = StatusRejected, rej
	} else {
		e.status, e.result = StatusPosted, result
	}
	b.entries = append(b.entries, e)
	b.cur = nil
	return e
}

// Stage is a batch's participant from a layer above the ledger (wallets,
// metering): it loads what the batch's ops need with a few queries before
// they apply, and writes its own rows after, in the same transaction.
type Stage interface {
	// Load runs before the ledger locks accounts; it may declare owners and
	// accounts to lock.
	Load(ctx context.Context, b *Batch, ops []Op) error
	// Flush runs after the ledger wrote its rows.
	Flush(ctx context.Context, b *Batch) error
}

// Module makes a fresh Stage for each transaction attempt.
type Module interface {
	Name() string
	NewStage() Stage
}
