package wallet

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/ledger/ledgertest"
)

// The wallet's rules with no database: a wallet and its stage in an
// in-memory batch (ledger/ledgertest), its ops applied by the poster's own
// batch code. These tests run in `go test -short`; the PostgreSQL tests
// prove the SQL around the same rules.

// t0 is the in-memory tests' clock.
var t0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

type memWallet struct {
	t   testing.TB
	b   *ledgertest.Batch
	st  *stage
	sys systemAccounts
	w   *walletState
	n   int // ops applied, for unique keys
	now time.Time
}

// newMemWallet opens a CREDITS wallet with the given settings, the asset's
// system accounts and the wallet's own accounts in an in-memory batch.
func newMemWallet(t testing.TB, w Wallet) *memWallet {
	t.Helper()
	b := ledgertest.NewBatch(t, t0)
	st := &stage{wallets: map[WalletID]*walletState{}}
	st.grants.reset()
	st.topups.reset()
	b.SetStage(module{}, st)
	if w.ID == (WalletID{}) {
		w.ID = WalletID(uuid.New())
	}
	if w.CustomerID == "" {
		w.CustomerID = "cus-" + w.ID.String()[:8]
	}
	if w.Asset == "" {
		w.Asset = "CREDITS"
	}
	if w.OveragePolicy == "" {
		w.OveragePolicy = PolicyBlock
	}
	if w.AlertThresholds == nil {
		w.AlertThresholds = []int{50, 80, 100}
	}
	w.CreatedAt = t0
	hot := func(code string, n ledger.Normal) ledger.AccountID {
		return b.Open(ledger.AccountSpec{Code: code, Asset: w.Asset, Normal: n, Hot: true}, ledger.Balance{}).ID
	}
	sys := systemAccounts{
		paid: hot("funding:paid", ledger.Debit), promotional: hot("funding:promotional", ledger.Debit),
		revenue: hot("revenue:usage", ledger.Credit), breakage: hot("revenue:breakage", ledger.Credit),
		receivable: hot("receivable:invoices", ledger.Debit),
	}
	overage := b.Open(ledger.AccountSpec{Code: "overage:" + w.ID.String(), Asset: w.Asset, Owner: w.ID, Normal: ledger.Debit, NoOverdraft: true}, ledger.Balance{})
	b.Open(ledger.AccountSpec{ID: billableAccount(w.ID), Code: "billable:" + w.ID.String(), Asset: w.Asset, Owner: w.ID, Normal: ledger.Debit}, ledger.Balance{})
	b.Open(ledger.AccountSpec{ID: RoundingAccount(w.ID), Code: "rounding:" + w.ID.String(), Asset: w.Asset, Owner: w.ID, Normal: ledger.Debit}, ledger.Balance{})
	ws := &walletState{Wallet: w, overage: overage.ID}
	st.wallets[w.ID] = ws
	st.grants.totals[w.ID] = &totals{}
	return &memWallet{t: t, b: b, st: st, sys: sys, w: ws, now: t0}
}

// tick moves the batch's clock.
func (m *memWallet) tick(d time.Duration) {
	m.now = m.now.Add(d)
	m.b.SetNow(m.now)
}

func (m *memWallet) base() base {
	m.n++
	return base{key: fmt.Sprintf("op-%d", m.n), walletID: m.w.ID, customer: m.w.CustomerID, sys: m.sys}
}

// grant adds a paid grant; prio and expiry as given (nil: none). The
// clock moves a second first, so grants made one after the other are
// older and younger ("oldest first" has something to order by).
func (m *memWallet) grant(amount string, prio int, expires *time.Time) Grant {
	m.t.Helper()
	m.tick(time.Second)
	return ledgertest.Posted[Grant](m.b, &addGrantOp{base: m.base(), grantID: GrantID(uuid.New()), account: ledger.NewAccountID(),
		req: NewGrant{Amount: ledger.MustAmount(amount), Kind: Paid, ExpiresAt: expires}, prio: prio})
}

// debit applies a debit: its result, or the code of its rejection.
func (m *memWallet) debit(amount string) (Debit, string) {
	m.t.Helper()
	out := m.b.Apply(&debitOp{base: m.base(), req: NewDebit{Amount: ledger.MustAmount(amount)}})
	if out.Rejection != nil {
		return Debit{}, out.Rejection.Code
	}
	var d Debit
	if err := json.Unmarshal(out.Result, &d); err != nil {
		m.t.Fatal(err)
	}
	return d, ""
}

// remaining is what is left on grant g.
func (m *memWallet) remaining(g Grant) ledger.Amount {
	m.t.Helper()
	gs := m.st.grants.byID[g.ID]
	if gs == nil {
		m.t.Fatalf("grant %s is not in the stage", g.ID)
	}
	bal, _ := m.b.Balance(gs.account)
	return bal.Posted(ledger.Credit)
}

// overage is what the wallet owes beyond its credits.
func (m *memWallet) overage() ledger.Amount {
	bal, _ := m.b.Balance(m.w.overage)
	return bal.Posted(ledger.Debit)
}

// after is t0 + d, as the pointer grant expiries take.
func after(d time.Duration) *time.Time {
	t := t0.Add(d)
	return &t
}

// hold places a hold: the hold, or the code of its rejection.
func (m *memWallet) hold(amount string) (Hold, string) {
	m.t.Helper()
	out := m.b.Apply(&holdOp{base: m.base(), holdID: ledger.NewHoldID(), req: NewHold{Amount: ledger.MustAmount(amount)}})
	if out.Rejection != nil {
		return Hold{}, out.Rejection.Code
	}
	var h Hold
	if err := json.Unmarshal(out.Result, &h); err != nil {
		m.t.Fatal(err)
	}
	return h, ""
}

// chargeOp charges metered usage the way metering's usage op does: inside
// an op of its own, through ChargeUsage.
type chargeOp struct {
	base
	amount ledger.Amount
	line   UsageLine
}

func (o *chargeOp) Kind() string           { return "usage" }
func (o *chargeOp) Fingerprint() []byte    { return []byte(o.key) }
func (o *chargeOp) Declare(d *ledger.Decl) { d.Account(o.sys.revenue) }
func (o *chargeOp) Apply(_ context.Context, b ledger.Batch) (any, error) {
	return ChargeUsage(b, o.walletID, o.sys, o.amount, o.line)
}

// charge charges amount of usage on line; it is never refused.
func (m *memWallet) charge(amount string, line UsageLine) Charge {
	m.t.Helper()
	return ledgertest.Posted[Charge](m.b, &chargeOp{base: m.base(), amount: ledger.MustAmount(amount), line: line})
}

// settleOp settles a wallet into the asset's receivable, as billing's
// closes do: a test's stand-in for an invoice.
type settleOp struct {
	base
}

func (o *settleOp) Kind() string        { return "invoice" }
func (o *settleOp) Fingerprint() []byte { return []byte(o.key) }
func (o *settleOp) needs(n *need) {
	o.base.needs(n)
	n.closing = append(n.closing, uuid.UUID(o.walletID))
}
func (o *settleOp) Declare(d *ledger.Decl) {
	d.Account(o.sys.receivable)
	d.Account(billableAccount(o.walletID))
}
func (o *settleOp) Apply(_ context.Context, b ledger.Batch) (any, error) {
	return Settle(b, o.walletID, o.sys.receivable, InvoiceID(uuid.New()))
}

// settleOwed settles the wallet: what it owed, moved to the receivable.
func (m *memWallet) settleOwed() Settlement {
	m.t.Helper()
	return ledgertest.Posted[Settlement](m.b, &settleOp{base: m.base()})
}

// posted is an account's posted balance on its normal side.
func (m *memWallet) posted(id ledger.AccountID, n ledger.Normal) ledger.Amount {
	m.t.Helper()
	bal, ok := m.b.Balance(id)
	if !ok {
		m.t.Fatalf("account %s is not in the batch", id)
	}
	return bal.Posted(n)
}

// message is an outbox message as a test reads it.
type message struct {
	Topic string
	Data  map[string]any
}

// messages are what the batch emitted, in order, keeping only the given
// topics (all when none).
func (m *memWallet) messages(topics ...string) []message {
	m.t.Helper()
	var out []message
	for _, o := range m.b.Outbox() {
		if len(topics) > 0 && !slices.Contains(topics, o.Topic) {
			continue
		}
		if o.Owner != m.w.ID {
			m.t.Fatalf("%s emitted for owner %s, want the wallet %s", o.Topic, o.Owner, m.w.ID)
		}
		msg := message{Topic: o.Topic}
		if err := json.Unmarshal(o.Payload, &msg.Data); err != nil {
			m.t.Fatal(err)
		}
		out = append(out, msg)
	}
	return out
}
