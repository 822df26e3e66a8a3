// Package wallet is the customers' side of the ledger: customers, one wallet
// per (customer, asset), credit grants (credit blocks) burned down in a fixed
// order, debits that spill into an overage receivable, holds, expiry and
// voids, and balances now and at any past instant.
//
// Every money movement is a ledger.Op applied by the batching poster; the
// wallet Module's stage loads the wallets and grants a batch needs with two
// queries and writes grant changes in the same transaction.
package wallet

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/ledger"
)

// Domain identifiers. A wallet id is also the ledger owner of the wallet's
// accounts; a grant id names its grant:<id> account.
type (
	WalletID = ledger.OwnerID
	GrantID  uuid.UUID
	HoldID   = ledger.HoldID
)

func (id GrantID) String() string                { return uuid.UUID(id).String() }
func (id GrantID) MarshalText() ([]byte, error)  { return []byte(id.String()), nil }
func (id *GrantID) UnmarshalText(b []byte) error { return (*uuid.UUID)(id).UnmarshalText(b) }

// ParseWalletID, ParseGrantID and ParseHoldID parse ids from URLs.
func ParseWalletID(s string) (WalletID, error) {
	u, err := uuid.Parse(s)
	return WalletID(u), err
}
func ParseGrantID(s string) (GrantID, error) {
	u, err := uuid.Parse(s)
	return GrantID(u), err
}
func ParseHoldID(s string) (HoldID, error) {
	u, err := uuid.Parse(s)
	return HoldID(u), err
}

// Policy is what happens to usage the credits do not cover.
type Policy string

const (
	PolicyBlock Policy = "block" // refuse it: 402, nothing posted
	PolicyAllow Policy = "allow" // post it to the overage receivable, up to the limit
)

// GrantKind is who paid for a grant.
type GrantKind string

const (
	Paid        GrantKind = "paid"
	Promotional GrantKind = "promotional"
)

// GrantStatus is a grant's state.
type GrantStatus string

const (
	GrantActive  GrantStatus = "active"
	GrantVoided  GrantStatus = "voided"
	GrantExpired GrantStatus = "expired"
)

// Customer is the app's customer, under the app's own id.
type Customer struct {
	ID        string          `json:"id"`
	Name      string          `json:"name,omitempty"`
	Email     string          `json:"email,omitempty"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
}

// Wallet holds one customer's credits in one asset.
type Wallet struct {
	ID              WalletID       `json:"id"`
	CustomerID      string         `json:"customer_id"`
	Asset           string         `json:"asset"`
	OveragePolicy   Policy         `json:"overage_policy"`
	OverageLimit    *ledger.Amount `json:"overage_limit"` // nil: no limit (with allow)
	AlertThresholds []int          `json:"alert_thresholds"`
	CreatedAt       time.Time      `json:"created_at"`
}

// NewWallet is what CreateWallet needs.
type NewWallet struct {
	CustomerID      string         `json:"customer_id"`
	Asset           string         `json:"asset"`
	OveragePolicy   Policy         `json:"overage_policy"`
	OverageLimit    *ledger.Amount `json:"overage_limit,omitempty"`
	AlertThresholds []int          `json:"alert_thresholds,omitempty"` // default 50, 80, 100
}

// Grant is a block of credits.
type Grant struct {
	ID          GrantID         `json:"id"`
	WalletID    WalletID        `json:"wallet_id"`
	Kind        GrantKind       `json:"kind"`
	Amount      ledger.Amount   `json:"amount"`
	Remaining   ledger.Amount   `json:"remaining"` // posted balance not yet burned, voided or expired
	Priority    int             `json:"priority"`
	EffectiveAt time.Time       `json:"effective_at"`
	ExpiresAt   *time.Time      `json:"expires_at"`
	CostBasis   *ledger.Amount  `json:"cost_basis,omitempty"`
	Description string          `json:"description,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	Status      GrantStatus     `json:"status"`
	Expired     ledger.Amount   `json:"expired"` // posted to breakage at expiry
	Voided      ledger.Amount   `json:"voided"`  // reversed by a void
	CreatedAt   time.Time       `json:"created_at"`
	VoidedAt    *time.Time      `json:"voided_at,omitempty"`
	ExpiredAt   *time.Time      `json:"expired_at,omitempty"`
}

// NewGrant is what AddGrant needs.
type NewGrant struct {
	Amount      ledger.Amount   `json:"amount"`
	Kind        GrantKind       `json:"kind"`
	Priority    *int            `json:"priority,omitempty"` // default 50; lower burns first
	EffectiveAt *time.Time      `json:"effective_at,omitempty"`
	ExpiresAt   *time.Time      `json:"expires_at,omitempty"`
	CostBasis   *ledger.Amount  `json:"cost_basis,omitempty"`
	Description string          `json:"description,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
}

// GrantBalance is one active grant in a balance.
type GrantBalance struct {
	ID        GrantID       `json:"id"`
	Remaining ledger.Amount `json:"remaining"`
	Priority  int           `json:"priority"`
	ExpiresAt *time.Time    `json:"expires_at"`
}

// Balance is a wallet's balance. Available is what debits may still use:
// the active grants' balance minus what holds reserve. Overage is the
// receivable for usage the credits did not cover.
type Balance struct {
	WalletID  WalletID       `json:"wallet_id"`
	Asset     string         `json:"asset"`
	Available ledger.Amount  `json:"available"`
	Held      ledger.Amount  `json:"held"`
	Overage   ledger.Amount  `json:"overage"`
	Granted   ledger.Amount  `json:"granted"`
	Consumed  ledger.Amount  `json:"consumed"`
	Expired   ledger.Amount  `json:"expired"`
	Voided    ledger.Amount  `json:"voided"`
	Grants    []GrantBalance `json:"grants"`
	AsOf      time.Time      `json:"as_of"`
}

// Debit is a debit's result.
type Debit struct {
	EntryID ledger.EntryID `json:"entry_id"`
	Amount  ledger.Amount  `json:"amount"`
	Covered ledger.Amount  `json:"covered"` // by credits
	Overage ledger.Amount  `json:"overage"` // posted to the receivable
	Balance Balance        `json:"balance"`
}

// NewDebit is what Debit needs.
type NewDebit struct {
	Amount      ledger.Amount   `json:"amount"`
	Description string          `json:"description,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
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

// Errors.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)

// ValidationError names the field a request got wrong.
type ValidationError struct {
	Field  string
	Detail string
}

func (e *ValidationError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Detail) }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Detail: fmt.Sprintf(format, args...)}
}

// Rejection codes of wallet operations, as recorded in the journal. The API
// maps them to HTTP statuses.
const (
	// CodeInsufficientCredits: the wallet's credits (and overage allowance)
	// cannot cover a debit or hold; nothing was posted. The ledger core's
	// word for it is overdraft; a wallet speaks of credits.
	CodeInsufficientCredits = "insufficient_credits"
	CodeHoldClosed          = ledger.CodeHoldClosed
	CodeHoldNotFound        = ledger.CodeHoldNotFound
	CodeCaptureExceedsHold  = ledger.CodeHoldExceeded
	CodeGrantClosed         = "grant_closed"
)

// RejectionCodes lists the codes wallet operations record besides the
// ledger's own, for tables that must map each.
func RejectionCodes() []string {
	return []string{CodeInsufficientCredits, CodeGrantClosed, CodeTopupClosed}
}
