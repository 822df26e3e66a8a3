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
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
)

// Policy is what happens to usage the credits do not cover.
type Policy string

const (
	PolicyBlock Policy = "block" // refuse it: 402, nothing posted
	PolicyAllow Policy = "allow" // post it to the overage receivable, up to the limit
)

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

// CreateWallet opens a wallet; ErrExists if the customer has one in that
// asset, a *ValidationError on customer_id if the customer does not exist.
// The overage policy defaults to block, the safe choice.
func (s *Service) CreateWallet(ctx context.Context, nw NewWallet) (Wallet, error) {
	if nw.CustomerID == "" {
		return Wallet{}, fault.Invalidf("customer_id", "required")
	}
	if !assetPattern.MatchString(nw.Asset) {
		return Wallet{}, fault.Invalidf("asset", "1 to 16 upper-case letters, digits or _, starting with a letter (e.g. CREDITS, USD)")
	}
	switch nw.OveragePolicy {
	case "":
		nw.OveragePolicy = PolicyBlock
	case PolicyBlock, PolicyAllow:
	default:
		return Wallet{}, fault.Invalidf("overage_policy", "must be block or allow")
	}
	if nw.OverageLimit != nil {
		if nw.OveragePolicy != PolicyAllow {
			return Wallet{}, fault.Invalidf("overage_limit", "only with overage_policy allow")
		}
		if nw.OverageLimit.IsNegative() {
			return Wallet{}, fault.Invalidf("overage_limit", "must not be negative")
		}
	}
	if nw.AlertThresholds == nil {
		nw.AlertThresholds = []int{50, 80, 100}
	}
	th := slices.Clone(nw.AlertThresholds)
	slices.Sort(th)
	if len(slices.Compact(slices.Clone(th))) != len(th) || len(th) > 10 {
		return Wallet{}, fault.Invalidf("alert_thresholds", "at most 10 distinct percentages")
	}
	for _, t := range th {
		if t < 1 || t > 100 {
			return Wallet{}, fault.Invalidf("alert_thresholds", "percentages from 1 to 100")
		}
	}
	if _, err := s.Customer(ctx, nw.CustomerID); err != nil {
		if errors.Is(err, fault.NotFound) {
			return Wallet{}, fault.Invalidf("customer_id", "no customer %q", nw.CustomerID)
		}
		return Wallet{}, err
	}
	if _, err := s.System(ctx, nw.Asset); err != nil {
		return Wallet{}, err
	}
	id := WalletID(uuid.New())
	thJSON, _ := json.Marshal(th)
	err := s.db.RunTx(ctx, pg.TxOptions{}, func(ctx context.Context, tx pgx.Tx) error {
		overage, err := ledger.InsertAccount(ctx, tx, ledger.AccountSpec{
			Code: "overage:" + id.String(), Asset: nw.Asset, Owner: id, Normal: ledger.Debit, NoOverdraft: true,
		})
		if err != nil {
			return err
		}
		if err := insertWalletAccounts(ctx, tx, id, nw.Asset); err != nil {
			return err
		}
		created := s.now().Truncate(time.Microsecond)
		_, end := Cycle(created, created)
		_, err = tx.Exec(ctx, `INSERT INTO wallets (id, customer_id, asset, overage_policy, overage_limit, alert_thresholds, overage_account_id,
				created_at, next_cycle_end)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			id, nw.CustomerID, nw.Asset, string(nw.OveragePolicy), nw.OverageLimit, string(thJSON), overage.ID, created, end)
		return err
	})
	if pg.IsUnique(err, "wallets_customer_asset") {
		return Wallet{}, fault.Existsf("customer %q already has a %s wallet", nw.CustomerID, nw.Asset)
	}
	if err != nil {
		return Wallet{}, fmt.Errorf("create wallet: %w", err)
	}
	w, err := s.Wallet(ctx, id)
	s.wallets.openedAccounts(id)
	return w, err
}

// Wallet reads a wallet.
func (s *Service) Wallet(ctx context.Context, id WalletID) (Wallet, error) {
	w, _, err := s.walletRow(ctx, id)
	return w, err
}

// WalletsOf lists a customer's wallets.
func (s *Service) WalletsOf(ctx context.Context, customerID string) ([]Wallet, error) {
	if _, err := s.Customer(ctx, customerID); err != nil {
		return nil, err
	}
	rows, err := s.db.Pool.Query(ctx, walletSelect+` WHERE w.customer_id = $1 ORDER BY w.created_at, w.id`, customerID)
	if err != nil {
		return nil, fmt.Errorf("list wallets: %w", err)
	}
	defer rows.Close()
	out := []Wallet{}
	for rows.Next() {
		w, _, err := scanWallet(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// walletColumns are what scanWallet reads, first in every wallet query.
const walletColumns = `w.id, w.customer_id, w.asset, w.overage_policy, w.overage_limit, w.alert_thresholds, w.created_at, w.overage_account_id`

const walletSelect = `SELECT ` + walletColumns + ` FROM wallets w`

// scanWallet reads a walletSelect row; extra receives columns selected
// after it.
func scanWallet(r pgx.Row, extra ...any) (Wallet, ledger.AccountID, error) {
	var (
		w       Wallet
		policy  string
		th      []byte
		overage ledger.AccountID
	)
	if err := r.Scan(append([]any{&w.ID, &w.CustomerID, &w.Asset, &policy, &w.OverageLimit, &th, &w.CreatedAt, &overage}, extra...)...); err != nil {
		return Wallet{}, overage, err
	}
	w.OveragePolicy = Policy(policy)
	w.CreatedAt = w.CreatedAt.UTC()
	if err := json.Unmarshal(th, &w.AlertThresholds); err != nil {
		return Wallet{}, overage, fmt.Errorf("wallet %s thresholds: %w", w.ID, err)
	}
	return w, overage, nil
}

func (s *Service) walletRow(ctx context.Context, id WalletID) (Wallet, ledger.AccountID, error) {
	if w, overage, ok := s.wallets.get(id); ok {
		return w, overage, nil
	}
	w, overage, err := scanWallet(s.db.Pool.QueryRow(ctx, walletSelect+` WHERE w.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Wallet{}, overage, fault.NotFoundf("no wallet %s", id)
	}
	if err != nil {
		return Wallet{}, overage, fmt.Errorf("read wallet: %w", err)
	}
	s.wallets.put(w, overage)
	return w, overage, nil
}
