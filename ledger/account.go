package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/jackc/pgx/v5"
)

// AccountSpec describes an account to create.
type AccountSpec struct {
	ID          AccountID // zero: a random id
	Code        string    // unique per asset, e.g. "grant:<id>", "revenue:usage"
	Asset       string
	Owner       OwnerID // zero for system accounts
	Normal      Normal
	NoOverdraft bool // the balance may not go below zero on its normal side
	// Hot makes a system account whose counters are split over the
	// ledger's HotRows rows, of which each poster shard writes only its own
	// (see store.go), so batches never queue behind one another on an
	// account like revenue. Hot accounts are made with EnsureAccount, and
	// cannot be no-overdraft (that needs one row to check).
	Hot      bool
	Metadata json.RawMessage
}

// Balance holds an account's four counters.
type Balance struct {
	DebitsPosted   Amount `json:"debits_posted"`
	CreditsPosted  Amount `json:"credits_posted"`
	DebitsPending  Amount `json:"debits_pending"`
	CreditsPending Amount `json:"credits_pending"`
}

func (b Balance) add(o Balance) Balance {
	return Balance{
		DebitsPosted:   b.DebitsPosted.Add(o.DebitsPosted),
		CreditsPosted:  b.CreditsPosted.Add(o.CreditsPosted),
		DebitsPending:  b.DebitsPending.Add(o.DebitsPending),
		CreditsPending: b.CreditsPending.Add(o.CreditsPending),
	}
}

func (b Balance) sub(o Balance) Balance {
	return Balance{
		DebitsPosted:   b.DebitsPosted.Sub(o.DebitsPosted),
		CreditsPosted:  b.CreditsPosted.Sub(o.CreditsPosted),
		DebitsPending:  b.DebitsPending.Sub(o.DebitsPending),
		CreditsPending: b.CreditsPending.Sub(o.CreditsPending),
	}
}

// Posted is the balance on the account's normal side, ignoring holds.
func (b Balance) Posted(n Normal) Amount {
	if n == Debit {
		return b.DebitsPosted.Sub(b.CreditsPosted)
	}
	return b.CreditsPosted.Sub(b.DebitsPosted)
}

// Held is what pending transfers reserve against the normal side.
func (b Balance) Held(n Normal) Amount {
	if n == Debit {
		return b.CreditsPending
	}
	return b.DebitsPending
}

// Available is Posted minus Held: what the account can still give.
func (b Balance) Available(n Normal) Amount { return b.Posted(n).Sub(b.Held(n)) }

// Account is an account with its balance.
type Account struct {
	ID          AccountID       `json:"id"`
	Code        string          `json:"code"`
	Asset       string          `json:"asset"`
	Owner       OwnerID         `json:"owner_id"`
	Normal      Normal          `json:"normal"`
	NoOverdraft bool            `json:"no_overdraft"`
	Shards      int             `json:"shards"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	Balance
}

// Available is the account's available balance.
func (a Account) Available() Amount { return a.Balance.Available(a.Normal) }

func normalString(n Normal) string { return n.String() }

func parseNormal(s string) (Normal, error) {
	switch s {
	case "debit":
		return Debit, nil
	case "credit":
		return Credit, nil
	}
	return 0, fmt.Errorf("unknown normal side %q", s)
}

func (s AccountSpec) validate() error {
	if s.Code == "" || s.Asset == "" {
		return errors.New("account needs a code and an asset")
	}
	if s.Normal != Debit && s.Normal != Credit {
		return errors.New("account needs a normal side")
	}
	if s.Hot && s.NoOverdraft {
		return errors.New("a hot (sharded) account cannot be no-overdraft")
	}
	return nil
}

// EnsureAccount creates the account with this code and asset if it does not
// exist and returns it either way. It is meant for system accounts, made once
// and then read from the ledger's cache; accounts owned by wallets are made
// inside batches (Batch.CreateAccount) with the operation that needs them.
func (l *Ledger) EnsureAccount(ctx context.Context, spec AccountSpec) (Account, error) {
	if err := spec.validate(); err != nil {
		return Account{}, err
	}
	if a, ok := l.cachedByCode(spec.Code, spec.Asset); ok {
		return a, nil
	}
	if spec.ID == (AccountID{}) {
		spec.ID = NewAccountID()
	}
	var (
		acct   Account
		rolled map[hotResidue]int
	)
	rows := 1
	if spec.Hot {
		rows = l.opts.HotRows
	}
	err := l.db.RunTx(ctx, pg.TxOptions{}, func(ctx context.Context, tx pgx.Tx) error {
		a, err := insertAccount(ctx, tx, spec, rows)
		if err != nil {
			return err
		}
		acct = a
		rolled, err = readRolled(ctx, tx, []Account{a})
		return err
	})
	if err != nil {
		return Account{}, fmt.Errorf("ensure account %s/%s: %w", spec.Code, spec.Asset, err)
	}
	// Cached only once committed: a batch must never declare an account
	// that a rolled-back transaction made up.
	l.remember([]Account{acct}, rolled)
	return acct, nil
}

// InsertAccount creates an account (and its counter row) in the caller's
// transaction unless one with the same code and asset exists, and returns
// the one that is there. Layers above use it to open an account together
// with their own rows (a wallet and its overage receivable). Hot accounts
// are the ledger's to make (EnsureAccount).
func InsertAccount(ctx context.Context, tx pgx.Tx, spec AccountSpec) (Account, error) {
	if spec.Hot {
		return Account{}, errors.New("hot accounts are made with EnsureAccount")
	}
	return insertAccount(ctx, tx, spec, 1)
}

func insertAccount(ctx context.Context, tx pgx.Tx, spec AccountSpec, rows int) (Account, error) {
	if err := spec.validate(); err != nil {
		return Account{}, err
	}
	if spec.ID == (AccountID{}) {
		spec.ID = NewAccountID()
	}
	var owner *OwnerID
	if !spec.Owner.IsZero() {
		owner = &spec.Owner
	}
	if _, err := tx.Exec(ctx, `INSERT INTO ledger_accounts (id, code, asset, owner_id, normal, no_overdraft, shards, metadata, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())
		ON CONFLICT (code, asset) DO NOTHING`,
		spec.ID, spec.Code, spec.Asset, owner, normalString(spec.Normal), spec.NoOverdraft, rows, nullJSON(spec.Metadata)); err != nil {
		return Account{}, fmt.Errorf("insert account: %w", err)
	}
	a, err := scanAccountMeta(tx.QueryRow(ctx, accountMetaSelect+` WHERE code = $1 AND asset = $2`, spec.Code, spec.Asset))
	if err != nil {
		return Account{}, err
	}
	for s := 0; s < a.Shards; s++ {
		if _, err := tx.Exec(ctx, `INSERT INTO ledger_balances (account_id, shard, normal, no_overdraft)
			VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, shard) DO NOTHING`,
			a.ID, s, normalString(a.Normal), a.NoOverdraft); err != nil {
			return Account{}, fmt.Errorf("insert balance row: %w", err)
		}
	}
	return a, nil
}

const accountMetaSelect = `SELECT id, code, asset, owner_id, normal, no_overdraft, shards, metadata, created_at FROM ledger_accounts`

type rowScanner interface{ Scan(...any) error }

func scanAccountMeta(r rowScanner) (Account, error) {
	var (
		a      Account
		owner  *OwnerID
		normal string
		meta   []byte
	)
	if err := r.Scan(&a.ID, &a.Code, &a.Asset, &owner, &normal, &a.NoOverdraft, &a.Shards, &meta, &a.CreatedAt); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return Account{}, fault.NotFoundf("no such account")
		}
		return Account{}, err
	}
	if owner != nil {
		a.Owner = *owner
	}
	n, err := parseNormal(normal)
	if err != nil {
		return Account{}, err
	}
	a.Normal = n
	a.Metadata = meta
	a.CreatedAt = a.CreatedAt.UTC()
	return a, nil
}

func nullJSON(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return []byte(b)
}

// Account reads an account and its balance (summed over shards).
func (l *Ledger) Account(ctx context.Context, id AccountID) (Account, error) {
	a, err := scanAccountMeta(l.db.Pool.QueryRow(ctx, accountMetaSelect+` WHERE id = $1`, id))
	if err != nil {
		return Account{}, fmt.Errorf("account %s: %w", id, err)
	}
	err = l.db.Pool.QueryRow(ctx, `SELECT COALESCE(SUM(debits_posted), 0), COALESCE(SUM(credits_posted), 0),
		COALESCE(SUM(debits_pending), 0), COALESCE(SUM(credits_pending), 0)
		FROM ledger_balances WHERE account_id = $1`, id).
		Scan(&a.DebitsPosted, &a.CreditsPosted, &a.DebitsPending, &a.CreditsPending)
	if err != nil {
		return Account{}, fmt.Errorf("balance of %s: %w", id, err)
	}
	return a, nil
}

// AccountsOf reads every account of an owner with its balance.
func (l *Ledger) AccountsOf(ctx context.Context, owner OwnerID) ([]Account, error) {
	rows, err := l.db.Pool.Query(ctx, `SELECT a.id, a.code, a.asset, a.owner_id, a.normal, a.no_overdraft, a.shards, a.metadata, a.created_at,
		b.debits_posted, b.credits_posted, b.debits_pending, b.credits_pending
		FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id AND b.shard = 0
		WHERE a.owner_id = $1 ORDER BY a.created_at, a.id`, owner)
	if err != nil {
		return nil, fmt.Errorf("accounts of %s: %w", owner, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Account, error) { return scanAccountWithBalance(r) })
}

func scanAccountWithBalance(r rowScanner) (Account, error) {
	var (
		a      Account
		owner  *OwnerID
		normal string
		meta   []byte
	)
	if err := r.Scan(&a.ID, &a.Code, &a.Asset, &owner, &normal, &a.NoOverdraft, &a.Shards, &meta, &a.CreatedAt,
		&a.DebitsPosted, &a.CreditsPosted, &a.DebitsPending, &a.CreditsPending); err != nil {
		return Account{}, err
	}
	if owner != nil {
		a.Owner = *owner
	}
	n, err := parseNormal(normal)
	if err != nil {
		return Account{}, err
	}
	a.Normal, a.Metadata, a.CreatedAt = n, meta, a.CreatedAt.UTC()
	return a, nil
}

// BalanceAt is an account's balance as of t, summed from its postings.
func (l *Ledger) BalanceAt(ctx context.Context, id AccountID, t time.Time) (Balance, error) {
	var b Balance
	err := l.db.Pool.QueryRow(ctx, `SELECT
		COALESCE(SUM(CASE WHEN direction = 'debit' AND NOT pending THEN amount END), 0),
		COALESCE(SUM(CASE WHEN direction = 'credit' AND NOT pending THEN amount END), 0),
		COALESCE(SUM(CASE WHEN direction = 'debit' AND pending THEN amount END), 0),
		COALESCE(SUM(CASE WHEN direction = 'credit' AND pending THEN amount END), 0)
		FROM ledger_postings WHERE account_id = $1 AND created_at <= $2`, id, t).
		Scan(&b.DebitsPosted, &b.CreditsPosted, &b.DebitsPending, &b.CreditsPending)
	if err != nil {
		return Balance{}, fmt.Errorf("balance of %s at %s: %w", id, t, err)
	}
	return b, nil
}

func (l *Ledger) cachedByID(id AccountID) (Account, bool) {
	l.cacheMu.RLock()
	defer l.cacheMu.RUnlock()
	a, ok := l.byID[id]
	return a, ok
}

func (l *Ledger) cachedByCode(code, asset string) (Account, bool) {
	l.cacheMu.RLock()
	defer l.cacheMu.RUnlock()
	a, ok := l.byCode[[2]string{code, asset}]
	return a, ok
}
