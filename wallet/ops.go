package wallet

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/creditledger/creditledger/ledger"
)

// Journal entry kinds of wallet operations. Point-in-time balances classify
// postings by them.
const (
	KindGrant       = "grant"
	KindDebit       = "debit"
	KindHold        = "hold"
	KindGrantVoid   = "grant_void"
	KindGrantExpiry = "grant_expiry"
)

// Outbox topics.
const TopicGrantExpired = "grant.expired"

// base carries what every wallet op has. Fingerprints cover the request,
// never ids the service generated for it, so a retried request matches.
type base struct {
	key      string
	walletID WalletID
	customer string // routes the op: one customer's ops, usage included, share a shard
	sys      systemAccounts
}

func (o *base) Key() string        { return o.key }
func (o *base) ShardKey() uint64   { return ledger.ShardOf(o.customer) }
func (o *base) wallet() WalletID   { return o.walletID }
func (o *base) grantRef() *GrantID { return nil }

// walletFor returns the op's wallet from the stage. The service checked it
// exists before submitting; a wallet missing here was never there.
func walletFor(b *ledger.Batch, id WalletID) (*stage, *walletState, error) {
	s := stageOf(b)
	w := s.wallets[id]
	if w == nil {
		return nil, nil, fmt.Errorf("wallet %s: %w", id, ErrNotFound)
	}
	return s, w, nil
}

// addGrantOp credits a new grant.
type addGrantOp struct {
	base
	grantID GrantID
	account ledger.AccountID
	req     NewGrant
	prio    int
	eff     *time.Time
}

func (o *addGrantOp) Kind() string { return KindGrant }
func (o *addGrantOp) Fingerprint() []byte {
	return ledger.Fingerprint(o.Kind(), struct {
		W WalletID
		R NewGrant
	}{o.walletID, o.req})
}
func (o *addGrantOp) Declare(d *ledger.Decl) {
	d.Account(o.sys.funding(o.req.Kind))
}

func (o *addGrantOp) Apply(_ context.Context, b *ledger.Batch) (any, error) {
	s, w, err := walletFor(b, o.walletID)
	if err != nil {
		return nil, err
	}
	eff := b.Now()
	if o.eff != nil {
		eff = *o.eff
	}
	b.Describe(w.ID, o.req.Description, o.req.Metadata)
	g, err := s.creditGrant(b, w, o.sys.funding(o.req.Kind), false, o.account, Grant{
		ID: o.grantID, Kind: o.req.Kind, Amount: o.req.Amount, Priority: o.prio, EffectiveAt: eff, ExpiresAt: o.req.ExpiresAt,
		CostBasis: o.req.CostBasis, Description: o.req.Description, Metadata: o.req.Metadata,
	})
	if err != nil {
		return nil, err
	}
	s.rearm(b, w)
	return g.Grant, nil
}

// creditGrant opens grant g's account (id account) in w, funds it from
// funding, and adds the grant to the batch. custom says funding is not the
// grant kind's funding account, so a void gives the rest back to funding.
func (s *stage) creditGrant(b *ledger.Batch, w *walletState, funding ledger.AccountID, custom bool, account ledger.AccountID, g Grant) (*grantState, error) {
	now := b.Now()
	if _, err := b.CreateAccount(ledger.AccountSpec{
		ID: account, Code: "grant:" + g.ID.String(), Asset: w.Asset, Owner: w.ID,
		Normal: ledger.Credit, NoOverdraft: true,
	}); err != nil {
		return nil, err
	}
	if err := b.Post(ledger.Postings(ledger.Transfer{Debit: funding, Credit: account, Amount: g.Amount})...); err != nil {
		return nil, err
	}
	g.WalletID, g.Remaining, g.Status, g.CreatedAt = w.ID, g.Amount, GrantActive, now
	gs := &grantState{isNew: true, account: account, Grant: g}
	if custom {
		gs.fundingAccount = &funding
	}
	s.grants[g.ID] = gs
	w.grants = append(w.grants, gs)
	s.newRows = append(s.newRows, gs)
	t := s.totals[w.ID]
	t.granted = t.granted.Add(g.Amount)
	b.OnUndo(func() {
		delete(s.grants, g.ID)
		w.grants = w.grants[:len(w.grants)-1]
		s.newRows = s.newRows[:len(s.newRows)-1]
		t.granted = t.granted.Sub(g.Amount)
	})
	return gs, nil
}

// plan splits amount over the wallet's usable grants in burn-down order,
// then over the overage receivable if the policy allows. It changes nothing.
func plan(b *ledger.Batch, w *walletState, amount ledger.Amount) (shares []ledger.HoldLeg, covered, overage ledger.Amount, rej *ledger.Rejection) {
	return planWith(b, w, amount, false)
}

// planWith is plan; force puts whatever credits do not cover on the overage
// receivable whatever the policy and limit say (usage that already happened).
func planWith(b *ledger.Batch, w *walletState, amount ledger.Amount, force bool) (shares []ledger.HoldLeg, covered, overage ledger.Amount, rej *ledger.Rejection) {
	now := b.Now()
	usable := make([]*grantState, 0, len(w.grants))
	for _, g := range w.grants {
		if g.usable(now) {
			usable = append(usable, g)
		}
	}
	burnOrder(usable)
	left := amount
	var available ledger.Amount
	for _, g := range usable {
		acc, ok := b.Account(g.account)
		if !ok {
			continue
		}
		avail := acc.Available()
		available = available.Add(avail)
		if !left.IsPositive() || !avail.IsPositive() {
			continue
		}
		take := avail.Min(left)
		shares = append(shares, ledger.HoldLeg{Debit: g.account, Amount: take})
		covered, left = covered.Add(take), left.Sub(take)
	}
	if !left.IsPositive() {
		return shares, covered, ledger.Zero, nil
	}
	if force {
		shares = append(shares, ledger.HoldLeg{Debit: w.overage, Amount: left})
		return shares, covered, left, nil
	}
	if w.OveragePolicy != PolicyAllow {
		return nil, ledger.Zero, ledger.Zero, ledger.Reject(CodeInsufficientCredits,
			"%s %s needed, %s available", amount, w.Asset, available)
	}
	if w.OverageLimit != nil {
		acc, _ := b.Account(w.overage)
		used := acc.Posted(ledger.Debit).Add(acc.DebitsPending)
		if used.Add(left).Cmp(*w.OverageLimit) > 0 {
			return nil, ledger.Zero, ledger.Zero, ledger.Reject(CodeInsufficientCredits,
				"%s %s needed, %s available and %s of the overage limit %s left",
				amount, w.Asset, available, w.OverageLimit.Sub(used).Max(ledger.Zero), w.OverageLimit)
		}
	}
	shares = append(shares, ledger.HoldLeg{Debit: w.overage, Amount: left})
	return shares, covered, left, nil
}

// debitOp burns credits.
type debitOp struct {
	base
	req NewDebit
}

func (o *debitOp) Kind() string { return KindDebit }
func (o *debitOp) Fingerprint() []byte {
	return ledger.Fingerprint(o.Kind(), struct {
		W WalletID
		R NewDebit
	}{o.walletID, o.req})
}
func (o *debitOp) Declare(d *ledger.Decl) { d.Account(o.sys.revenue) }

func (o *debitOp) Apply(_ context.Context, b *ledger.Batch) (any, error) {
	s, w, err := walletFor(b, o.walletID)
	if err != nil {
		return nil, err
	}
	b.Describe(w.ID, o.req.Description, o.req.Metadata)
	shares, covered, overage, rej := plan(b, w, o.req.Amount)
	if rej != nil {
		return nil, rej
	}
	var ps []ledger.Posting
	for _, sh := range shares {
		ps = append(ps, ledger.Postings(ledger.Transfer{Debit: sh.Debit, Credit: o.sys.revenue, Amount: sh.Amount})...)
	}
	if err := b.Post(ps...); err != nil {
		return nil, err
	}
	if err := s.react(b, w); err != nil {
		return nil, err
	}
	return Debit{EntryID: b.EntryID(), Amount: o.req.Amount, Covered: covered, Overage: overage, Balance: s.balance(b, w)}, nil
}

// holdOp reserves credits.
type holdOp struct {
	base
	holdID HoldID
	req    NewHold
}

func (o *holdOp) Kind() string { return KindHold }
func (o *holdOp) Fingerprint() []byte {
	return ledger.Fingerprint(o.Kind(), struct {
		W WalletID
		R NewHold
	}{o.walletID, o.req})
}
func (o *holdOp) Declare(d *ledger.Decl) { d.Account(o.sys.revenue) }

func (o *holdOp) Apply(_ context.Context, b *ledger.Batch) (any, error) {
	s, w, err := walletFor(b, o.walletID)
	if err != nil {
		return nil, err
	}
	b.Describe(w.ID, "", o.req.Metadata)
	shares, _, _, rej := plan(b, w, o.req.Amount)
	if rej != nil {
		return nil, rej
	}
	for i := range shares {
		shares[i].Credit = o.sys.revenue
	}
	secs := int64(defaultHoldSeconds)
	if o.req.ExpiresInSeconds != nil {
		secs = *o.req.ExpiresInSeconds
	}
	exp := b.Now().Add(time.Duration(secs) * time.Second)
	h, err := b.PlaceHold(ledger.HoldSpec{ID: o.holdID, Owner: w.ID, Legs: shares, ExpiresAt: &exp, Metadata: o.req.Metadata})
	if err != nil {
		return nil, err
	}
	if err := s.react(b, w); err != nil {
		return nil, err
	}
	return holdView(h), nil
}

const defaultHoldSeconds = 600

// captureOp is the ledger's capture seen by the wallet stage: capturing a
// hold that reached into overage posts the receivable, which react must
// see (wallet.overage_started), as after a debit. Key, kind and
// fingerprint are the ledger op's.
type captureOp struct{ *ledger.CaptureOp }

func (o *captureOp) wallet() WalletID   { return o.Owner }
func (o *captureOp) grantRef() *GrantID { return nil }
func (o *captureOp) Apply(ctx context.Context, b *ledger.Batch) (any, error) {
	s, w, err := walletFor(b, o.Owner)
	if err != nil {
		return nil, err
	}
	h, err := o.CaptureOp.Apply(ctx, b)
	if err != nil {
		return nil, err
	}
	return h, s.react(b, w)
}

// closeGrantOp voids a grant (void) or expires it (sweeper), posting what
// remains available to the funding account or to breakage. Run again on a
// closed grant it settles what a hold left behind since.
type closeGrantOp struct {
	base
	grantID GrantID
	expire  bool
	// snapshot makes the sweeper's key unique per state of the grant, so a
	// later sweep is a new operation and a concurrent one a replay.
	snapshot string
}

func (o *closeGrantOp) Kind() string {
	if o.expire {
		return KindGrantExpiry
	}
	return KindGrantVoid
}
func (o *closeGrantOp) Fingerprint() []byte {
	return ledger.Fingerprint(o.Kind(), struct {
		G GrantID
		S string
	}{o.grantID, o.snapshot})
}
func (o *closeGrantOp) grantRef() *GrantID { return &o.grantID }
func (o *closeGrantOp) Declare(d *ledger.Decl) {
	d.Account(o.sys.breakage)
	d.Account(o.sys.paid)
	d.Account(o.sys.promotional)
}

func (o *closeGrantOp) Apply(_ context.Context, b *ledger.Batch) (any, error) {
	s, w, err := walletFor(b, o.walletID)
	if err != nil {
		return nil, err
	}
	g := s.grants[o.grantID]
	if g == nil {
		return nil, fmt.Errorf("grant %s: %w", o.grantID, ErrNotFound)
	}
	now := b.Now()
	b.Describe(w.ID, "", nil)
	switch {
	case !o.expire && g.Status == GrantExpired:
		return nil, ledger.Reject(CodeGrantClosed, "grant %s has expired", g.ID)
	case !o.expire && g.Status == GrantVoided && o.snapshot == "":
		return nil, ledger.Reject(CodeGrantClosed, "grant %s is already voided", g.ID)
	case o.expire && g.Status == GrantVoided, o.expire && g.Status == GrantActive && (g.ExpiresAt == nil || g.ExpiresAt.After(now)):
		// Voided meanwhile, or not yet due: nothing to expire.
		return s.grantView(b, g), nil
	}
	acc, ok := b.Account(g.account)
	if !ok {
		return nil, fmt.Errorf("grant account %s not locked", g.account)
	}
	// What holds reserve stays until they close; the sweeper settles it then.
	rest := acc.Available()
	dest := o.sys.funding(g.Kind)
	if g.fundingAccount != nil {
		dest = *g.fundingAccount
	}
	if o.expire {
		dest = o.sys.breakage
	}
	if rest.IsPositive() {
		if err := b.Post(ledger.Postings(ledger.Transfer{Debit: g.account, Credit: dest, Amount: rest})...); err != nil {
			return nil, err
		}
	}
	wasActive := g.Status == GrantActive
	s.markDirty(b, g)
	t := s.totals[w.ID]
	savedT := *t
	b.OnUndo(func() { *t = savedT })
	if o.expire {
		g.Expired, t.expired = g.Expired.Add(rest), t.expired.Add(rest)
		if wasActive {
			g.Status, g.ExpiredAt = GrantExpired, &now
		}
	} else {
		g.Voided, t.voided = g.Voided.Add(rest), t.voided.Add(rest)
		if wasActive {
			g.Status, g.VoidedAt = GrantVoided, &now
		}
	}
	if err := s.react(b, w); err != nil {
		return nil, err
	}
	view := s.grantView(b, g)
	if o.expire && wasActive {
		if err := b.Emit(TopicGrantExpired, w.ID, struct {
			Grant
			CustomerID string `json:"customer_id"`
		}{view, w.CustomerID}); err != nil {
			return nil, err
		}
	}
	return view, nil
}

// grantView is the grant as the API shows it, with its current remainder.
func (s *stage) grantView(b *ledger.Batch, g *grantState) Grant {
	v := g.Grant
	if acc, ok := b.Account(g.account); ok {
		v.Remaining = acc.Posted(ledger.Credit)
	}
	return v
}

// holdView turns a ledger hold into the wallet's view of it.
func holdView(h ledger.Hold) Hold {
	st := HoldHeld
	switch h.Status {
	case ledger.HoldCaptured:
		st = HoldCaptured
	case ledger.HoldVoided:
		st = HoldVoided
	case ledger.HoldExpired:
		st = HoldExpired
	}
	return Hold{ID: h.ID, WalletID: h.Owner, Status: st, Amount: h.Amount, Captured: h.Captured,
		ExpiresAt: h.ExpiresAt, Metadata: h.Metadata, CreatedAt: h.CreatedAt, ClosedAt: h.ClosedAt}
}

// decodeResult reads an op's stored result back.
func decodeResult[T any](out ledger.Outcome) (T, error) {
	var v T
	if err := json.Unmarshal(out.Result, &v); err != nil {
		return v, fmt.Errorf("decode stored result: %w", err)
	}
	return v, nil
}
