package wallet

import (
	"context"
	"errors"
	"fmt"

	"time"

	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/internal/cursor"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
)

// Service is the wallet API of the domain. Money-moving methods take an
// idempotency key ("" makes a fresh one) and report whether the result is a
// replay of an earlier call with the same key. Business refusals come back
// as *ledger.Rejection errors (errors.As), recorded under the key: the same
// key gets the same refusal. A key reused with another payload is
// ledger.ErrIdempotencyConflict; bad input is a *ValidationError; unknown
// ids are ErrNotFound.
type Service struct {
	l       *ledger.Ledger
	db      *pg.DB
	now     func() time.Time
	wallets walletCache
}

// NewService returns the wallet service on a ledger whose poster was built
// with Module() among its modules.
func NewService(l *ledger.Ledger) *Service {
	return &Service{l: l, db: l.DB(), now: l.Now}
}

// Module is the wallet stage for the poster: pass it in ledger.Options.Modules.
func Module() ledger.Module { return module{} }

// CreateCustomer stores a customer; ErrExists if the id is taken. An empty
// id gets a generated one.
func (s *Service) CreateCustomer(ctx context.Context, c Customer) (Customer, error) {
	return s.createCustomer(ctx, c)
}

// CustomerExists reports whether a customer exists.
func (s *Service) CustomerExists(ctx context.Context, id string) (bool, error) {
	return CustomerExists(ctx, s.db, id)
}

// CustomerExists reports whether a customer exists, for tools that have a
// database but no poster (ledgerctl).
func CustomerExists(ctx context.Context, db *pg.DB, id string) (bool, error) {
	if !customerIDPattern.MatchString(id) {
		return false, nil // and PostgreSQL is not asked about a NUL
	}
	var one int
	err := db.Pool.QueryRow(ctx, `SELECT 1 FROM customers WHERE id = $1`, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up customer: %w", err)
	}
	return true, nil
}

// Customer reads a customer.
func (s *Service) Customer(ctx context.Context, id string) (Customer, error) {
	return s.customer(ctx, id)
}

// CreateWallet opens a wallet; ErrExists if the customer has one in that
// asset, a *ValidationError on customer_id if the customer does not exist.
// The overage policy defaults to block, the safe choice.
func (s *Service) CreateWallet(ctx context.Context, w NewWallet) (Wallet, error) {
	return s.createWallet(ctx, w)
}

// Wallet reads a wallet.
func (s *Service) Wallet(ctx context.Context, id WalletID) (Wallet, error) { return s.wallet(ctx, id) }

// WalletsOf lists a customer's wallets.
func (s *Service) WalletsOf(ctx context.Context, customerID string) ([]Wallet, error) {
	return s.walletsOf(ctx, customerID)
}

// Balance is the wallet's balance now, or as it was at *at.
func (s *Service) Balance(ctx context.Context, id WalletID, at *time.Time) (Balance, error) {
	return s.balance(ctx, id, at)
}

// AddGrant credits the wallet with a new grant.
func (s *Service) AddGrant(ctx context.Context, key string, id WalletID, g NewGrant) (Grant, bool, error) {
	return s.addGrant(ctx, key, id, g)
}

// Grants lists a wallet's grants, newest first.
func (s *Service) Grants(ctx context.Context, id WalletID) ([]Grant, error) { return s.grants(ctx, id) }

// GrantByID reads one grant.
func (s *Service) GrantByID(ctx context.Context, id GrantID) (Grant, error) { return s.grant(ctx, id) }

// VoidGrant reverses what remains of a grant to its funding account.
func (s *Service) VoidGrant(ctx context.Context, key string, id GrantID) (Grant, bool, error) {
	return s.voidGrant(ctx, key, id)
}

// Debit burns credits; with policy allow, what they do not cover goes to
// the overage receivable up to the limit, otherwise the debit is refused
// whole (insufficient_credits) and nothing is posted.
func (s *Service) Debit(ctx context.Context, key string, id WalletID, d NewDebit) (Debit, bool, error) {
	return s.debit(ctx, key, id, d)
}

// PlaceHold reserves an amount against the wallet.
func (s *Service) PlaceHold(ctx context.Context, key string, id WalletID, h NewHold) (Hold, bool, error) {
	return s.placeHold(ctx, key, id, h)
}

// Hold reads a hold.
func (s *Service) Hold(ctx context.Context, id HoldID) (Hold, error) { return s.hold(ctx, id) }

// CaptureHold posts amount of the hold (nil: all of it) and releases the rest.
func (s *Service) CaptureHold(ctx context.Context, key string, id HoldID, amount *ledger.Amount) (Hold, bool, error) {
	return s.captureHold(ctx, key, id, amount)
}

// VoidHold releases the whole hold.
func (s *Service) VoidHold(ctx context.Context, key string, id HoldID) (Hold, bool, error) {
	return s.voidHold(ctx, key, id)
}

// Entries lists the wallet's journal entries, newest first.
func (s *Service) Entries(ctx context.Context, id WalletID, after *cursor.Cursor, limit int) ([]ledger.Entry, *cursor.Cursor, error) {
	if _, err := s.wallet(ctx, id); err != nil {
		return nil, nil, err
	}
	return s.l.EntriesOf(ctx, id, after, limit, false)
}

// Sweep expires grants past their expiry (remainder to breakage) and
// settles what holds left on voided or expired grants. It is idempotent.
func (s *Service) Sweep(ctx context.Context) (int, error) { return s.sweep(ctx) }
