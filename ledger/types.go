// Package ledger is the double-entry core: accounts with TigerBeetle-style
// counters, journal entries whose postings balance per asset, holds (pending
// transfers), idempotency, the batching poster every write goes through, and
// the invariant verifier.
//
// It knows nothing of wallets, meters, prices, HTTP or NATS. Layers above it
// express their writes as Ops; the poster applies many Ops in one
// transaction, each against the in-memory state left by the ones before it.
package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/creditledger/creditledger/fault"
	"github.com/google/uuid"
)

// Identifiers are UUIDs, so rows can be created on any node without a
// sequence (CockroachDB) and ids can be chosen before the write (idempotency).
type (
	AccountID uuid.UUID
	EntryID   uuid.UUID
	HoldID    uuid.UUID
	// OwnerID groups accounts that one operation may touch together (in
	// practice a wallet). Ops declare owners; the batch locks all their
	// accounts, including ones created earlier in the same batch.
	OwnerID uuid.UUID
)

func (id AccountID) String() string { return uuid.UUID(id).String() }
func (id EntryID) String() string   { return uuid.UUID(id).String() }
func (id HoldID) String() string    { return uuid.UUID(id).String() }
func (id OwnerID) String() string   { return uuid.UUID(id).String() }
func (id OwnerID) IsZero() bool     { return id == OwnerID{} }

func (id AccountID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }
func (id EntryID) MarshalText() ([]byte, error)   { return []byte(id.String()), nil }
func (id HoldID) MarshalText() ([]byte, error)    { return []byte(id.String()), nil }
func (id OwnerID) MarshalText() ([]byte, error)   { return []byte(id.String()), nil }

func (id *AccountID) UnmarshalText(b []byte) error { return unmarshalUUID((*uuid.UUID)(id), b) }
func (id *EntryID) UnmarshalText(b []byte) error   { return unmarshalUUID((*uuid.UUID)(id), b) }
func (id *HoldID) UnmarshalText(b []byte) error    { return unmarshalUUID((*uuid.UUID)(id), b) }
func (id *OwnerID) UnmarshalText(b []byte) error   { return unmarshalUUID((*uuid.UUID)(id), b) }

func unmarshalUUID(u *uuid.UUID, b []byte) error {
	v, err := uuid.ParseBytes(b)
	if err != nil {
		return err
	}
	*u = v
	return nil
}

// NewAccountID, NewHoldID and NewEntryID make random ids.
func NewAccountID() AccountID { return AccountID(uuid.New()) }
func NewHoldID() HoldID       { return HoldID(uuid.Must(uuid.NewV7())) }

// NewEntryID makes time-ordered ids (UUIDv7): each batch appends to the right
// edge of the entries' and postings' primary-key indexes instead of touching
// a random page per row, which after every checkpoint costs a full-page
// image in the WAL.
func NewEntryID() EntryID { return EntryID(uuid.Must(uuid.NewV7())) }

// Side is the side of an account a posting moves.
type Side int8

const (
	Debit Side = iota + 1
	Credit
)

func (s Side) String() string {
	switch s {
	case Debit:
		return "debit"
	case Credit:
		return "credit"
	}
	return fmt.Sprintf("Side(%d)", int8(s))
}

func (s Side) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Normal is the side on which an account's balance grows. A customer's
// credit grant is a liability: credit-normal. A receivable is debit-normal.
type Normal = Side

// Posting is one side of a transfer: amount moved on one side of one account.
type Posting struct {
	Account AccountID `json:"account_id"`
	Side    Side      `json:"direction"`
	Amount  Amount    `json:"amount"`
}

// Transfer is the usual way to write postings: debit one account and credit
// another by the same amount.
type Transfer struct {
	Debit, Credit AccountID
	Amount        Amount
}

// Postings expands transfers into balanced postings.
func Postings(ts ...Transfer) []Posting {
	out := make([]Posting, 0, 2*len(ts))
	for _, t := range ts {
		out = append(out,
			Posting{Account: t.Debit, Side: Debit, Amount: t.Amount},
			Posting{Account: t.Credit, Side: Credit, Amount: t.Amount})
	}
	return out
}

// Rejection is a business refusal of an operation (not enough credits, a
// hold already closed). It is recorded under the operation's idempotency key,
// so retrying the key gets the same rejection, as in TigerBeetle.
type Rejection struct {
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

func (r *Rejection) Error() string { return r.Code + ": " + r.Detail }

// Fault says what a rejection is in the service's vocabulary: a refusal,
// by its code.
func (r *Rejection) Fault() *fault.Error {
	return &fault.Error{Kind: fault.Refused, Code: r.Code, Detail: r.Detail}
}

// Reject makes a Rejection.
func Reject(code, format string, args ...any) *Rejection {
	return &Rejection{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Rejection codes the ledger itself produces. The layers above speak their
// own words (a wallet's "insufficient_credits" rather than "overdraft").
const (
	CodeOverdraft    = "overdraft"
	CodeHoldNotFound = "hold_not_found"
	CodeHoldClosed   = "hold_closed"
	CodeHoldExceeded = "capture_exceeds_hold"
	// CodeInvalidData: the database refused the operation's data
	// (pg.KindOf: fault.Invalid); the poster found the operation at fault
	// and refused it alone.
	CodeInvalidData = "invalid_data"
	// CodeLimitExceeded: the operation would move more than MaxOpAmount,
	// or take a counter past what it can hold (see amount.go).
	CodeLimitExceeded = "limit_exceeded"
)

// RejectionCodes lists the codes above, for tables that must map each.
func RejectionCodes() []string {
	return []string{CodeOverdraft, CodeHoldNotFound, CodeHoldClosed, CodeHoldExceeded, CodeInvalidData, CodeLimitExceeded}
}

// Errors of the ledger that are not recorded rejections, each of its kind.
var (
	// ErrIdempotencyConflict: the key was used before with another payload.
	ErrIdempotencyConflict error = &fault.Error{Kind: fault.Idempotency,
		Detail: "this idempotency key was used before with a different request; send a new key for a new request"}
	// ErrUnbalanced: postings do not sum to zero per asset (a bug).
	ErrUnbalanced = errors.New("postings do not balance")
	// ErrNotLocked: an op touched an account it did not declare (a bug).
	ErrNotLocked = errors.New("account not declared by the operation")
	// ErrClosed: the poster is shutting down.
	ErrClosed error = &fault.Error{Kind: fault.Unavailable, Detail: "the ledger is shutting down"}
)

// Status of an entry.
type Status string

const (
	StatusPosted   Status = "posted"
	StatusRejected Status = "rejected"
)

// Outcome is what became of an operation. A replayed outcome was read back
// from the database: the key had been applied before.
type Outcome struct {
	EntryID   EntryID
	Status    Status
	Rejection *Rejection
	Result    json.RawMessage // the op's result as stored
	CreatedAt time.Time
	Replayed  bool
}

// Err returns the rejection, if any, as an error.
func (o Outcome) Err() error {
	if o.Rejection != nil {
		return o.Rejection
	}
	return nil
}

// Op is one operation for the poster. The poster may run Apply more than
// once (a retried transaction), so Apply must derive everything from the op
// and the batch, never from state it kept itself.
type Op interface {
	// Key is the idempotency key, unique across the ledger.
	Key() string
	// Fingerprint identifies the payload: the same key with a different
	// fingerprint is ErrIdempotencyConflict.
	Fingerprint() []byte
	// Kind names the operation in the journal ("grant", "debit", …).
	Kind() string
	// ShardKey routes the op: ops with equal keys go to the same poster
	// shard and are applied in the order they were submitted.
	ShardKey() uint64
	// Declare names the owners, accounts and holds the op may touch, so the
	// batch can lock them, in a global order, before applying anything.
	Declare(d *Decl)
	// Apply runs in batch order against the batch's in-memory state. A
	// *Rejection is recorded; any other error fails only this op, unrecorded.
	// The result is stored as JSON with the entry and returned to callers.
	Apply(ctx context.Context, b Batch) (result any, err error)
}

// Decl collects what an op will touch.
type Decl struct {
	owners   []OwnerID
	accounts []AccountID
	holds    []HoldID
}

// Owner declares every account of owner (its wallet).
func (d *Decl) Owner(id OwnerID) { d.owners = append(d.owners, id) }

// Account declares one account.
func (d *Decl) Account(id AccountID) { d.accounts = append(d.accounts, id) }

// Hold declares a hold (and with it the owner and accounts of its legs).
func (d *Decl) Hold(id HoldID) { d.holds = append(d.holds, id) }
