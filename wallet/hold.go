package wallet

import (
	"context"
	"encoding/json"
	"time"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/ledger"
)

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

func (o *holdOp) Apply(_ context.Context, b ledger.Batch) (any, error) {
	s, w, err := walletFor(b, o.walletID)
	if err != nil {
		return nil, err
	}
	b.Describe(w.ID, "", o.req.Metadata)
	sp, err := burnDown(b, w, o.req.Amount, false)
	if err != nil {
		return nil, err
	}
	legs := make([]ledger.HoldLeg, len(sp.shares))
	for i, sh := range sp.shares {
		legs[i] = ledger.HoldLeg{Debit: sh.account, Credit: o.sys.revenue, Amount: sh.amount}
	}
	secs := int64(defaultHoldSeconds)
	if o.req.ExpiresInSeconds != nil {
		secs = *o.req.ExpiresInSeconds
	}
	exp := b.Now().Add(time.Duration(secs) * time.Second)
	h, err := b.PlaceHold(ledger.HoldSpec{ID: o.holdID, Owner: w.ID, Legs: legs, ExpiresAt: &exp, Metadata: o.req.Metadata})
	if err != nil {
		return nil, credits(err)
	}
	if err := s.react(b, w); err != nil {
		return nil, err
	}
	return holdView(h), nil
}

const defaultHoldSeconds = 600

// captureOp is the ledger's capture of a wallet's hold: capturing a hold
// that reached into overage posts the receivable, which react must see
// (wallet.overage_started), as after a debit. Key, kind and fingerprint are
// the ledger op's; the result is the wallet's view of the hold.
type captureOp struct {
	*ledger.CaptureOp
	customer string
}

func (o *captureOp) ShardKey() uint64 { return Route(o.customer) }
func (o *captureOp) Module() string   { return moduleName }
func (o *captureOp) needs(n *need)    { n.wallet(o.Owner) }

func (o *captureOp) Apply(ctx context.Context, b ledger.Batch) (any, error) {
	s, w, err := walletFor(b, o.Owner)
	if err != nil {
		return nil, err
	}
	h, err := o.CaptureOp.Apply(ctx, b)
	if err != nil {
		return nil, credits(err)
	}
	if err := s.react(b, w); err != nil {
		return nil, err
	}
	return holdView(h.(ledger.Hold)), nil
}

// voidHoldOp releases a wallet's hold: asked for (void), or by the expiry
// sweeper (expire). The result is the wallet's view of the hold.
type voidHoldOp struct {
	*ledger.VoidOp
	customer string
}

func (o *voidHoldOp) ShardKey() uint64 { return Route(o.customer) }
func (o *voidHoldOp) Module() string   { return moduleName }
func (o *voidHoldOp) needs(n *need)    { n.wallet(o.Owner) }

func (o *voidHoldOp) Apply(ctx context.Context, b ledger.Batch) (any, error) {
	touchWallet(b, o.Owner) // the balance cache sees the release
	h, err := o.VoidOp.Apply(ctx, b)
	if err != nil {
		return nil, err
	}
	return holdView(h.(ledger.Hold)), nil
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

// PlaceHold reserves an amount against the wallet.
func (s *Service) PlaceHold(ctx context.Context, key string, id WalletID, h NewHold) (ledger.Result[Hold], error) {
	var none ledger.Result[Hold]
	if err := opAmount("amount", h.Amount); err != nil {
		return none, err
	}
	if h.ExpiresInSeconds != nil && (*h.ExpiresInSeconds < 1 || *h.ExpiresInSeconds > 7*24*3600) {
		return none, fault.Invalidf("expires_in_seconds", "from 1 to 604800 (7 days)")
	}
	if err := validMetadata("metadata", h.Metadata); err != nil {
		return none, err
	}
	w, err := s.walletRef(ctx, id)
	if err != nil {
		return none, err
	}
	sys, err := s.System(ctx, w.Asset)
	if err != nil {
		return none, err
	}
	return submit[Hold](ctx, s, &holdOp{base: base{key: newKey(key), walletID: id, customer: w.CustomerID, sys: sys}, holdID: ledger.NewHoldID(), req: h})
}

// Hold reads a hold.
func (s *Service) Hold(ctx context.Context, id HoldID) (Hold, error) {
	h, err := s.l.HoldByID(ctx, id)
	if err != nil {
		return Hold{}, err
	}
	v := holdView(h)
	// Past its expiry it can no longer be captured; the sweeper releases
	// its reservation within a second. Say what it is.
	if v.Status == HoldHeld && v.ExpiresAt != nil && !v.ExpiresAt.After(s.now()) {
		v.Status = HoldExpired
	}
	return v, nil
}

// CaptureHold posts amount of the hold (nil: all of it) and releases the rest.
func (s *Service) CaptureHold(ctx context.Context, key string, id HoldID, amount *ledger.Amount) (ledger.Result[Hold], error) {
	var none ledger.Result[Hold]
	if amount != nil && amount.IsNegative() {
		return none, fault.Invalidf("amount", "must not be negative")
	}
	if amount != nil && ledger.CheckOpAmount(*amount) != nil {
		return none, fault.Invalidf("amount", "at most %s per operation", ledger.MaxOpAmount)
	}
	h, w, err := s.holdAndWallet(ctx, id)
	if err != nil {
		return none, err
	}
	return submit[Hold](ctx, s, &captureOp{&ledger.CaptureOp{IdempotencyKey: newKey(key), Hold: id, Owner: h.WalletID, Amount: amount}, w.CustomerID})
}

// VoidHold releases the whole hold.
func (s *Service) VoidHold(ctx context.Context, key string, id HoldID) (ledger.Result[Hold], error) {
	h, w, err := s.holdAndWallet(ctx, id)
	if err != nil {
		return ledger.Result[Hold]{}, err
	}
	return submit[Hold](ctx, s, &voidHoldOp{&ledger.VoidOp{IdempotencyKey: newKey(key), Hold: id, Owner: h.WalletID}, w.CustomerID})
}

func (s *Service) holdAndWallet(ctx context.Context, id HoldID) (Hold, Wallet, error) {
	h, err := s.Hold(ctx, id)
	if err != nil {
		return Hold{}, Wallet{}, err
	}
	w, err := s.walletRef(ctx, h.WalletID)
	return h, w, err
}

// HoldStatus is a hold's state as the API shows it.
type HoldStatus string

const (
	HoldHeld     HoldStatus = "held"
	HoldCaptured HoldStatus = "captured"
	HoldVoided   HoldStatus = "voided"
	HoldExpired  HoldStatus = "expired"
)

// Hold reserves credits for a usage whose cost is known only later.
type Hold struct {
	ID        HoldID          `json:"id"`
	WalletID  WalletID        `json:"wallet_id"`
	Status    HoldStatus      `json:"status"`
	Amount    ledger.Amount   `json:"amount"`
	Captured  ledger.Amount   `json:"captured"`
	ExpiresAt *time.Time      `json:"expires_at"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	ClosedAt  *time.Time      `json:"closed_at,omitempty"`
}

// NewHold is what PlaceHold needs.
type NewHold struct {
	Amount           ledger.Amount   `json:"amount"`
	ExpiresInSeconds *int64          `json:"expires_in_seconds,omitempty"` // default 600
	Metadata         json.RawMessage `json:"metadata,omitempty"`
}
