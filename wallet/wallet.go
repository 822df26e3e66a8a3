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
	"sync"
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
	th, err := validThresholds(nw.AlertThresholds)
	if err != nil {
		return Wallet{}, err
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
	thJSON, err := json.Marshal(th)
	if err != nil {
		return Wallet{}, fmt.Errorf("wallet thresholds: %w", err)
	}
	err = s.db.RunTx(ctx, pg.TxOptions{}, func(ctx context.Context, tx pgx.Tx) error {
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

// validThresholds sorts alert thresholds, refusing what CreateWallet and
// UpdateWallet refuse.
func validThresholds(in []int) ([]int, error) {
	th := slices.Clone(in)
	slices.Sort(th)
	if len(slices.Compact(slices.Clone(th))) != len(th) || len(th) > 10 {
		return nil, fault.Invalidf("alert_thresholds", "at most 10 distinct percentages")
	}
	for _, t := range th {
		if t < 1 || t > 100 {
			return nil, fault.Invalidf("alert_thresholds", "percentages from 1 to 100")
		}
	}
	return th, nil
}

// Wallet reads a wallet as it is: its settings from the row, never from
// the wallet map, where another process's UpdateWallet would not show.
func (s *Service) Wallet(ctx context.Context, id WalletID) (Wallet, error) {
	w, overage, err := scanWallet(s.db.Pool.QueryRow(ctx, walletSelect+` WHERE w.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Wallet{}, fault.NotFoundf("no wallet %s", id)
	}
	if err != nil {
		return Wallet{}, fmt.Errorf("read wallet: %w", err)
	}
	s.wallets.put(w, overage)
	return w, nil
}

// walletRef is the wallet from the map when it is there: its id,
// customer, asset and creation are right, its settings may be stale (see
// walletCache). Operations use it to route and to check the wallet exists.
func (s *Service) walletRef(ctx context.Context, id WalletID) (Wallet, error) {
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

// walletCacheSize bounds the wallets kept in memory: about 200 bytes each,
// so at most a few megabytes.
const walletCacheSize = 1 << 16

// walletCache keeps wallets as they were read. What the map is asked for —
// id, customer, asset, creation and overage account — is fixed at creation,
// so it needs no invalidation, not even between several ledgerd processes
// on one database. The settings (policy, limit, thresholds) change with
// UpdateWallet and may be stale here: nothing decides or answers with them
// from the map (the wallet stage reads the row in every batch, and
// Service.Wallet reads it for answers). It spares each debit, hold and
// balance read the query that only resolved the wallet's customer and
// asset.
type walletCache struct {
	mu sync.RWMutex
	m  map[WalletID]cachedWallet
}

type cachedWallet struct {
	w        Wallet
	overage  ledger.AccountID
	accounts bool // its billable and rounding accounts are known to exist
}

func (c *walletCache) get(id WalletID) (Wallet, ledger.AccountID, bool) {
	c.mu.RLock()
	e, ok := c.m[id]
	c.mu.RUnlock()
	if !ok {
		return Wallet{}, ledger.AccountID{}, false
	}
	// The caller owns what it gets: it must not write into the cache's slice.
	e.w.AlertThresholds = slices.Clone(e.w.AlertThresholds)
	return e.w, e.overage, true
}

func (c *walletCache) put(w Wallet, overage ledger.AccountID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[WalletID]cachedWallet)
	}
	if len(c.m) >= walletCacheSize {
		// Forget an arbitrary half (map order is random): cheaper than LRU
		// bookkeeping on every hit, and a miss costs only one query.
		n := 0
		for id := range c.m {
			if n >= walletCacheSize/2 {
				break
			}
			delete(c.m, id)
			n++
		}
	}
	w.AlertThresholds = slices.Clone(w.AlertThresholds)
	c.m[w.ID] = cachedWallet{w: w, overage: overage, accounts: c.m[w.ID].accounts}
}

// invalidate forgets wallet id (its settings changed).
func (c *walletCache) invalidate(id WalletID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
}

// accountsOpened reports whether wallet id's billable and rounding accounts
// are known to exist.
func (c *walletCache) accountsOpened(id WalletID) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[id].accounts
}

// openedAccounts records that they do, if the wallet is in the map (it is
// after any read of it; evicted, the next ensure checks again, harmlessly).
func (c *walletCache) openedAccounts(id WalletID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[id]; ok {
		e.accounts = true
		c.m[id] = e
	}
}

// SystemAccounts are an asset's funding and revenue accounts, resolved by
// Service.System before an op that charges usage is submitted.
type SystemAccounts = systemAccounts

// systemAccounts are the per-asset accounts on the other side of wallets.
type systemAccounts struct {
	paid, promotional ledger.AccountID // funding: debit-normal
	included          ledger.AccountID // funding of plans' included credits
	revenue, breakage ledger.AccountID // credit-normal
	receivable        ledger.AccountID // debit-normal: what invoices bill
}

// Receivable is the asset's receivable:invoices account: what issued
// invoices bill until they are paid.
func (s systemAccounts) Receivable() ledger.AccountID { return s.receivable }

func (s systemAccounts) funding(k GrantKind) ledger.AccountID {
	switch k {
	case Promotional:
		return s.promotional
	case Included:
		return s.included
	}
	return s.paid
}

// IncludedFunding is the asset's funding:included account, which funds
// plans' included credits.
func (s systemAccounts) IncludedFunding() ledger.AccountID { return s.included }

// System returns the asset's system accounts, creating them on first use.
func (s *Service) System(ctx context.Context, asset string) (SystemAccounts, error) {
	var out systemAccounts
	for _, a := range []struct {
		dst    *ledger.AccountID
		code   string
		normal ledger.Normal
	}{
		{&out.paid, "funding:paid", ledger.Debit},
		{&out.promotional, "funding:promotional", ledger.Debit},
		{&out.included, "funding:included", ledger.Debit},
		{&out.revenue, "revenue:usage", ledger.Credit},
		{&out.breakage, "revenue:breakage", ledger.Credit},
		{&out.receivable, "receivable:invoices", ledger.Debit},
	} {
		acc, err := s.l.EnsureAccount(ctx, ledger.AccountSpec{Code: a.code, Asset: asset, Normal: a.normal, Hot: true})
		if err != nil {
			return out, err
		}
		*a.dst = acc.ID
	}
	return out, nil
}

// walletAccountID is the id of one of a wallet's own bookkeeping accounts,
// derived from the wallet's id so every op can name it without a lookup.
func walletAccountID(w WalletID, code string) ledger.AccountID {
	return ledger.AccountID(uuid.NewSHA1(uuid.UUID(w), []byte(code)))
}

// billableAccount funds immediate top-ups: what the customer owes for them
// until an invoice settles it (debit-normal). It may go negative: voiding a
// top-up's grant after it was invoiced gives the rest back, a credit on the
// next invoice.
func billableAccount(w WalletID) ledger.AccountID { return walletAccountID(w, "billable") }

// RoundingAccount carries the part of a wallet's invoice below its minor
// unit to the next invoice (debit-normal, may go either way). The billing
// package posts to it; the wallet opens it.
func RoundingAccount(w WalletID) ledger.AccountID { return walletAccountID(w, "rounding") }

// insertWalletAccounts opens wallet w's billable and rounding accounts in
// tx, unless they are there.
func insertWalletAccounts(ctx context.Context, tx pgx.Tx, w WalletID, asset string) error {
	for _, a := range []ledger.AccountSpec{
		{ID: billableAccount(w), Code: "billable:" + w.String(), Asset: asset, Owner: w, Normal: ledger.Debit},
		{ID: RoundingAccount(w), Code: "rounding:" + w.String(), Asset: asset, Owner: w, Normal: ledger.Debit},
	} {
		if _, err := ledger.InsertAccount(ctx, tx, a); err != nil {
			return err
		}
	}
	return nil
}

// EnsureAccounts opens w's billable and rounding accounts if they are not
// there yet: wallets made before they existed get them before their first
// settlement.
// It is remembered in the bounded wallet map, not in the ledger's account
// cache, which is for system accounts and would grow with every wallet a
// monthly close touches.
func (s *Service) EnsureAccounts(ctx context.Context, w Wallet) error {
	if s.wallets.accountsOpened(w.ID) {
		return nil
	}
	err := s.db.RunTx(ctx, pg.TxOptions{}, func(ctx context.Context, tx pgx.Tx) error {
		return insertWalletAccounts(ctx, tx, w.ID, w.Asset)
	})
	if err != nil {
		return fmt.Errorf("open wallet accounts: %w", err)
	}
	s.wallets.openedAccounts(w.ID)
	return nil
}

// Cycle returns the monthly billing cycle anchored at anchor that contains
// t: [start, end). A cycle anchored on the 31st ends on the last day of
// shorter months rather than spilling into the next (Go's AddDate would
// turn 31 January + 1 month into 3 March).
func Cycle(anchor, t time.Time) (start, end time.Time) {
	anchor, t = anchor.UTC(), t.UTC()
	months := (t.Year()-anchor.Year())*12 + int(t.Month()-anchor.Month())
	start = AddMonths(anchor, months)
	if start.After(t) {
		months--
		start = AddMonths(anchor, months)
	}
	return start, AddMonths(anchor, months+1)
}

// AddMonths moves anchor n months, clamping its day to the month's last
// (31 January + 1 month is 28 February, + 2 is 31 March): the rule of every
// billing period, a wallet's cycle and a subscription's month or year.
func AddMonths(anchor time.Time, n int) time.Time {
	y, m := anchor.Year(), int(anchor.Month())-1+n
	y += m / 12
	m %= 12
	if m < 0 {
		m += 12
		y--
	}
	first := time.Date(y, time.Month(m+1), 1, anchor.Hour(), anchor.Minute(), anchor.Second(), anchor.Nanosecond(), time.UTC)
	last := first.AddDate(0, 1, -1).Day()
	return first.AddDate(0, 0, min(anchor.Day(), last)-1)
}
