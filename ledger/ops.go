package ledger

import (
	"context"
	"encoding/json"
	"time"
)

// TransferOp posts fixed postings: the plain double-entry operation. Layers
// above build richer ops (burn-down debits); this one serves system moves,
// tests and tools.
type TransferOp struct {
	IdempotencyKey string          `json:"-"`
	Owner          OwnerID         `json:"owner_id"`
	Postings       []Posting       `json:"postings"`
	Description    string          `json:"description,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
}

func (o *TransferOp) Key() string         { return o.IdempotencyKey }
func (o *TransferOp) Kind() string        { return "transfer" }
func (o *TransferOp) Fingerprint() []byte { return Fingerprint(o.Kind(), o) }
func (o *TransferOp) ShardKey() uint64    { return ShardOf(o.Owner.String()) }
func (o *TransferOp) Declare(d *Decl) {
	for _, p := range o.Postings {
		d.Account(p.Account)
	}
}

// TransferResult is a TransferOp's stored result.
type TransferResult struct {
	EntryID EntryID `json:"entry_id"`
}

func (o *TransferOp) Apply(_ context.Context, b Batch) (any, error) {
	b.Describe(o.Owner, o.Description, o.Metadata)
	if err := b.Post(o.Postings...); err != nil {
		return nil, err
	}
	return TransferResult{EntryID: b.EntryID()}, nil
}

// HoldOp places a hold with fixed legs.
type HoldOp struct {
	IdempotencyKey string     `json:"-"`
	ID             HoldID     `json:"id"`
	Owner          OwnerID    `json:"owner_id"`
	Legs           []HoldLeg  `json:"legs"`
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
}

func (o *HoldOp) Key() string         { return o.IdempotencyKey }
func (o *HoldOp) Kind() string        { return "hold" }
func (o *HoldOp) Fingerprint() []byte { return Fingerprint(o.Kind(), o) }
func (o *HoldOp) ShardKey() uint64    { return ShardOf(o.Owner.String()) }
func (o *HoldOp) Declare(d *Decl) {
	for _, l := range o.Legs {
		d.Account(l.Debit)
		d.Account(l.Credit)
	}
}
func (o *HoldOp) Apply(_ context.Context, b Batch) (any, error) {
	b.Describe(o.Owner, "", nil)
	return b.PlaceHold(HoldSpec{ID: o.ID, Owner: o.Owner, Legs: o.Legs, ExpiresAt: o.ExpiresAt})
}

// CaptureOp posts a hold, all of it when Amount is nil.
type CaptureOp struct {
	IdempotencyKey string  `json:"-"`
	Hold           HoldID  `json:"hold_id"`
	Owner          OwnerID `json:"owner_id"` // routes the op to the hold's shard
	Amount         *Amount `json:"amount,omitempty"`
	// Route, if set, replaces Owner as the shard key, so the capture joins
	// the queue of the other ops of the same customer.
	Route string `json:"-"`
}

func (o *CaptureOp) Key() string         { return o.IdempotencyKey }
func (o *CaptureOp) Kind() string        { return "capture" }
func (o *CaptureOp) Fingerprint() []byte { return Fingerprint(o.Kind(), o) }
func (o *CaptureOp) ShardKey() uint64    { return routeOr(o.Route, o.Owner) }
func (o *CaptureOp) Declare(d *Decl)     { d.Hold(o.Hold) }
func (o *CaptureOp) Apply(_ context.Context, b Batch) (any, error) {
	b.Describe(o.Owner, "", nil)
	return b.CaptureHold(o.Hold, o.Amount)
}

// VoidOp releases a hold. Expired marks the expiry sweeper's release.
type VoidOp struct {
	IdempotencyKey string  `json:"-"`
	Hold           HoldID  `json:"hold_id"`
	Owner          OwnerID `json:"owner_id"`
	Expired        bool    `json:"expired,omitempty"`
	Route          string  `json:"-"` // as CaptureOp.Route
}

func (o *VoidOp) Key() string         { return o.IdempotencyKey }
func (o *VoidOp) Kind() string        { return "void" }
func (o *VoidOp) Fingerprint() []byte { return Fingerprint(o.Kind(), o) }
func (o *VoidOp) ShardKey() uint64    { return routeOr(o.Route, o.Owner) }

func routeOr(route string, owner OwnerID) uint64 {
	if route != "" {
		return ShardOf(route)
	}
	return ShardOf(owner.String())
}
func (o *VoidOp) Declare(d *Decl) { d.Hold(o.Hold) }
func (o *VoidOp) Apply(_ context.Context, b Batch) (any, error) {
	b.Describe(o.Owner, "", nil)
	h, err := b.VoidHold(o.Hold, o.Expired)
	if err != nil {
		return nil, err
	}
	if o.Expired {
		// Told through the outbox in the same transaction: the webhook for
		// an expiry exists exactly when the release committed.
		if err := b.Emit(TopicHoldExpired, h.Owner, h); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// TopicHoldExpired is the outbox topic of a hold released at expiry.
const TopicHoldExpired = "hold.expired"

// CreateAccountOp creates an owned account inside a batch, so that it is
// ordered with the owner's other operations.
type CreateAccountOp struct {
	IdempotencyKey string      `json:"-"`
	Spec           AccountSpec `json:"spec"`
}

func (o *CreateAccountOp) Key() string         { return o.IdempotencyKey }
func (o *CreateAccountOp) Kind() string        { return "open_account" }
func (o *CreateAccountOp) Fingerprint() []byte { return Fingerprint(o.Kind(), o) }
func (o *CreateAccountOp) ShardKey() uint64    { return ShardOf(o.Spec.Owner.String()) }
func (o *CreateAccountOp) Declare(d *Decl)     { d.Owner(o.Spec.Owner) }
func (o *CreateAccountOp) Apply(_ context.Context, b Batch) (any, error) {
	b.Describe(o.Spec.Owner, "", nil)
	return b.CreateAccount(o.Spec)
}
