package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Memory applies operations the way the poster does — in order, each against
// the state the ones before it left, a rejection recorded with everything
// the op did undone, a failing op undone and failed alone — to accounts and
// holds held in memory, with no database behind them. It runs the same
// batch code as the poster: the rules of posting (balanced postings, no
// overdraft, counter limits, holds) are not copied here, only its storage is
// missing. Tests of operations' rules use it (package ledger/ledgertest);
// nothing it does is ever written.
type Memory struct {
	b *batch
}

// NewMemory is an empty in-memory batch at now.
func NewMemory(now time.Time) *Memory {
	l := &Ledger{opts: Options{HotRows: 32, Clock: func() time.Time { return now }}, limits: Limits{}.withDefaults(),
		byID: map[AccountID]Account{}, byCode: map[[2]string]Account{}, hot: map[hotResidue]int{}, modules: map[string]bool{}}
	return &Memory{b: newBatch(l, nil, 0, now.UTC().Truncate(time.Microsecond))}
}

// Batch is the batch an op applies against, for calling an op's pieces
// directly.
func (m *Memory) Batch() Batch { return m.b }

// SetNow moves the batch's clock.
func (m *Memory) SetNow(t time.Time) { m.b.now = t.UTC().Truncate(time.Microsecond) }

// SetStage installs s as the batch's stage of module mod, as the poster's
// batch would have after the module's Load.
func (m *Memory) SetStage(mod Module, s Stage) {
	m.b.stages[mod.Name()] = s
	m.b.ledger.modules[mod.Name()] = true
}

// Open adds an account with a balance, as if the batch had locked it. A hot
// account (spec.Hot) starts at zero whatever bal says, and ops cannot read
// it, as in the poster; Balance reads what the batch moved on it.
func (m *Memory) Open(spec AccountSpec, bal Balance) (Account, error) {
	if err := spec.validate(); err != nil {
		return Account{}, err
	}
	if spec.ID == (AccountID{}) {
		spec.ID = NewAccountID()
	}
	if _, dup := m.b.accounts[spec.ID]; dup {
		return Account{}, fmt.Errorf("account %s is open already", spec.ID)
	}
	a := Account{ID: spec.ID, Code: spec.Code, Asset: spec.Asset, Owner: spec.Owner, Normal: spec.Normal,
		NoOverdraft: spec.NoOverdraft, Shards: 1, Metadata: spec.Metadata, CreatedAt: m.b.now}
	if spec.Hot {
		a.Shards = m.b.ledger.opts.HotRows
		m.b.ledger.remember([]Account{a}, nil)
		return a, nil
	}
	a.Balance = bal
	st := &acct{Account: a, loaded: bal}
	m.b.accounts[a.ID] = st
	if !a.Owner.IsZero() {
		m.b.byOwner[a.Owner] = append(m.b.byOwner[a.Owner], st)
	}
	return a, nil
}

// Apply applies op as the poster would, and answers as it would answer its
// caller: a posted result, a recorded rejection, or the op's error.
func (m *Memory) Apply(ctx context.Context, op Op) (Outcome, error) {
	if mo, ok := op.(ModuleOp); ok && !m.b.ledger.modules[mo.Module()] {
		return Outcome{}, fmt.Errorf("ledger: a %s op needs module %q, which this batch has no stage of", op.Kind(), mo.Module())
	}
	r := m.b.applyOne(ctx, op)
	if r.err != nil {
		return Outcome{}, r.err
	}
	if err := m.b.checkBalanced(); err != nil {
		return Outcome{}, err
	}
	return r.out, nil
}

// Balance is an account's balance as the batch has it now (for a hot
// account, what the batch moved on it).
func (m *Memory) Balance(id AccountID) (Balance, bool) {
	a, ok := m.b.accounts[id]
	if !ok {
		return Balance{}, false
	}
	bal := a.Balance
	for _, o := range a.other {
		bal = bal.add(o)
	}
	return bal, true
}

// MemoryMessage is an outbox message a batch emitted.
type MemoryMessage struct {
	Topic   string
	Owner   OwnerID
	Payload json.RawMessage
}

// Outbox is what the batch emitted, in order.
func (m *Memory) Outbox() []MemoryMessage {
	out := make([]MemoryMessage, len(m.b.outbox))
	for i, o := range m.b.outbox {
		out[i] = MemoryMessage{Topic: o.topic, Owner: o.owner, Payload: o.payload}
	}
	return out
}

// Hold is a hold as the batch has it.
func (m *Memory) Hold(id HoldID) (Hold, bool) {
	h, ok := m.b.holds[id]
	if !ok {
		return Hold{}, false
	}
	return h.Hold, true
}
