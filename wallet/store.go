package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/text"
	"github.com/creditledger/creditledger/ledger"
)

// systemAccounts are the per-asset accounts on the other side of wallets.
type systemAccounts struct {
	paid, promotional ledger.AccountID // funding: debit-normal
	revenue, breakage ledger.AccountID // credit-normal
	receivable        ledger.AccountID // debit-normal: what invoices bill
}

func (s systemAccounts) funding(k GrantKind) ledger.AccountID {
	if k == Promotional {
		return s.promotional
	}
	return s.paid
}

// hotShards splits each system account's counters so that poster shards
// (8 by default) never share a row.
const hotShards = 32

// system returns the asset's system accounts, creating them on first use.
// After that they come from the ledger's cache without a query.
func (s *Service) system(ctx context.Context, asset string) (systemAccounts, error) {
	var out systemAccounts
	for _, a := range []struct {
		dst    *ledger.AccountID
		code   string
		normal ledger.Normal
	}{
		{&out.paid, "funding:paid", ledger.Debit},
		{&out.promotional, "funding:promotional", ledger.Debit},
		{&out.revenue, "revenue:usage", ledger.Credit},
		{&out.breakage, "revenue:breakage", ledger.Credit},
		{&out.receivable, "receivable:invoices", ledger.Debit},
	} {
		acc, err := s.l.EnsureAccount(ctx, ledger.AccountSpec{Code: a.code, Asset: asset, Normal: a.normal, Shards: hotShards})
		if err != nil {
			return out, err
		}
		*a.dst = acc.ID
	}
	return out, nil
}

var (
	customerIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$`)
	assetPattern      = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,15}$`)
)

// maxMetadata bounds a metadata object, in bytes.
const maxMetadata = 16 << 10

func validMetadata(field string, m json.RawMessage) error {
	if len(m) == 0 {
		return nil
	}
	if len(m) > maxMetadata {
		return invalid(field, "at most 16 KiB")
	}
	var obj map[string]any
	if err := json.Unmarshal(m, &obj); err != nil {
		return invalid(field, "must be a JSON object")
	}
	return textError(text.CheckJSON(field, m, maxMetadata))
}

// checkText refuses text PostgreSQL would not store, or that is too long,
// before it reaches a batch, where it would fail every operation with it.
func checkText(field, s string, maxBytes int) error {
	return textError(text.Check(field, s, maxBytes))
}

// textError is a text.Error as this package's ValidationError.
func textError(err error) error {
	var te *text.Error
	if errors.As(err, &te) {
		return &ValidationError{Field: te.Field, Detail: te.Detail}
	}
	return err
}

func nullText(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func isUnique(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && (constraint == "" || pgErr.ConstraintName == constraint)
}

func (s *Service) createCustomer(ctx context.Context, c Customer) (Customer, error) {
	if c.ID == "" {
		c.ID = "cus_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	}
	if !customerIDPattern.MatchString(c.ID) {
		return Customer{}, invalid("id", "1 to 128 characters: letters, digits and _ . : @ -, starting with a letter or digit")
	}
	if err := checkText("name", c.Name, 200); err != nil {
		return Customer{}, err
	}
	if err := checkText("email", c.Email, 254); err != nil {
		return Customer{}, err
	}
	if c.Email != "" && !strings.Contains(c.Email, "@") {
		return Customer{}, invalid("email", "not an email address")
	}
	if err := validMetadata("metadata", c.Metadata); err != nil {
		return Customer{}, err
	}
	c.CreatedAt = s.now().Truncate(time.Microsecond)
	tag, err := s.db.Pool.Exec(ctx, `INSERT INTO customers (id, name, email, metadata, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO NOTHING`, c.ID, nullText(c.Name), nullText(c.Email), nullText(string(c.Metadata)), c.CreatedAt)
	if err != nil {
		return Customer{}, fmt.Errorf("create customer: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return Customer{}, fmt.Errorf("customer %q: %w", c.ID, ErrExists)
	}
	return s.customer(ctx, c.ID)
}

func (s *Service) customer(ctx context.Context, id string) (Customer, error) {
	if !customerIDPattern.MatchString(id) {
		// No customer has such an id, and PostgreSQL would refuse to look
		// for one holding a NUL or invalid UTF-8.
		return Customer{}, fmt.Errorf("customer %q: %w", id, ErrNotFound)
	}
	var (
		c           Customer
		name, email *string
	)
	err := s.db.Pool.QueryRow(ctx, `SELECT id, name, email, metadata, created_at FROM customers WHERE id = $1`, id).
		Scan(&c.ID, &name, &email, &c.Metadata, &c.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Customer{}, fmt.Errorf("customer %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Customer{}, fmt.Errorf("read customer: %w", err)
	}
	if name != nil {
		c.Name = *name
	}
	if email != nil {
		c.Email = *email
	}
	c.CreatedAt = c.CreatedAt.UTC()
	return c, nil
}

func (s *Service) createWallet(ctx context.Context, nw NewWallet) (Wallet, error) {
	if nw.CustomerID == "" {
		return Wallet{}, invalid("customer_id", "required")
	}
	if !assetPattern.MatchString(nw.Asset) {
		return Wallet{}, invalid("asset", "1 to 16 upper-case letters, digits or _, starting with a letter (e.g. CREDITS, USD)")
	}
	switch nw.OveragePolicy {
	case "":
		nw.OveragePolicy = PolicyBlock
	case PolicyBlock, PolicyAllow:
	default:
		return Wallet{}, invalid("overage_policy", "must be block or allow")
	}
	if nw.OverageLimit != nil {
		if nw.OveragePolicy != PolicyAllow {
			return Wallet{}, invalid("overage_limit", "only with overage_policy allow")
		}
		if nw.OverageLimit.IsNegative() {
			return Wallet{}, invalid("overage_limit", "must not be negative")
		}
	}
	if nw.AlertThresholds == nil {
		nw.AlertThresholds = []int{50, 80, 100}
	}
	th := slices.Clone(nw.AlertThresholds)
	slices.Sort(th)
	if len(slices.Compact(slices.Clone(th))) != len(th) || len(th) > 10 {
		return Wallet{}, invalid("alert_thresholds", "at most 10 distinct percentages")
	}
	for _, t := range th {
		if t < 1 || t > 100 {
			return Wallet{}, invalid("alert_thresholds", "percentages from 1 to 100")
		}
	}
	if _, err := s.customer(ctx, nw.CustomerID); err != nil {
		if errors.Is(err, ErrNotFound) {
			return Wallet{}, invalid("customer_id", "no customer %q", nw.CustomerID)
		}
		return Wallet{}, err
	}
	if _, err := s.system(ctx, nw.Asset); err != nil {
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
	if isUnique(err, "wallets_customer_asset") {
		return Wallet{}, fmt.Errorf("customer %q already has a %s wallet: %w", nw.CustomerID, nw.Asset, ErrExists)
	}
	if err != nil {
		return Wallet{}, fmt.Errorf("create wallet: %w", err)
	}
	w, err := s.wallet(ctx, id)
	s.wallets.openedAccounts(id)
	return w, err
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
		return Wallet{}, overage, fmt.Errorf("wallet %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Wallet{}, overage, fmt.Errorf("read wallet: %w", err)
	}
	s.wallets.put(w, overage)
	return w, overage, nil
}

func (s *Service) wallet(ctx context.Context, id WalletID) (Wallet, error) {
	w, _, err := s.walletRow(ctx, id)
	return w, err
}

func (s *Service) walletsOf(ctx context.Context, customerID string) ([]Wallet, error) {
	if _, err := s.customer(ctx, customerID); err != nil {
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

const grantSelect = `SELECT g.id, g.wallet_id, g.account_id, g.kind, g.amount, g.priority, g.effective_at, g.expires_at,
	g.cost_basis, g.description, g.metadata, g.status, g.expired_amount, g.voided_amount, g.created_at, g.voided_at, g.expired_at`

// scanGrant reads a grant row; extra receives columns selected after it.
func scanGrant(r pgx.Row, extra ...any) (Grant, ledger.AccountID, error) {
	var (
		g       Grant
		account ledger.AccountID
		kind    string
		status  string
		desc    *string
	)
	dst := append([]any{&g.ID, &g.WalletID, &account, &kind, &g.Amount, &g.Priority, &g.EffectiveAt, &g.ExpiresAt,
		&g.CostBasis, &desc, &g.Metadata, &status, &g.Expired, &g.Voided, &g.CreatedAt, &g.VoidedAt, &g.ExpiredAt}, extra...)
	if err := r.Scan(dst...); err != nil {
		return Grant{}, account, fmt.Errorf("scan grant: %w", err)
	}
	g.Kind, g.Status = GrantKind(kind), GrantStatus(status)
	if desc != nil {
		g.Description = *desc
	}
	g.EffectiveAt, g.CreatedAt = g.EffectiveAt.UTC(), g.CreatedAt.UTC()
	for _, t := range []*time.Time{g.ExpiresAt, g.VoidedAt, g.ExpiredAt} {
		if t != nil {
			*t = t.UTC()
		}
	}
	return g, account, nil
}

func (s *Service) grants(ctx context.Context, id WalletID) ([]Grant, error) {
	if _, err := s.wallet(ctx, id); err != nil {
		return nil, err
	}
	rows, err := s.db.Pool.Query(ctx, grantSelect+`, bal.credits_posted - bal.debits_posted
		FROM grants g JOIN ledger_balances bal ON bal.account_id = g.account_id AND bal.shard = 0
		WHERE g.wallet_id = $1 ORDER BY g.created_at DESC, g.id DESC`, id)
	if err != nil {
		return nil, fmt.Errorf("list grants: %w", err)
	}
	defer rows.Close()
	out := []Grant{}
	for rows.Next() {
		var remaining ledger.Amount
		g, _, err := scanGrant(rows, &remaining)
		if err != nil {
			return nil, err
		}
		g.Remaining = remaining
		out = append(out, g)
	}
	return out, rows.Err()
}

func (s *Service) grant(ctx context.Context, id GrantID) (Grant, error) {
	var remaining ledger.Amount
	g, _, err := scanGrant(s.db.Pool.QueryRow(ctx, grantSelect+`, bal.credits_posted - bal.debits_posted
		FROM grants g JOIN ledger_balances bal ON bal.account_id = g.account_id AND bal.shard = 0
		WHERE g.id = $1`, id), &remaining)
	if errors.Is(err, pgx.ErrNoRows) {
		return Grant{}, fmt.Errorf("grant %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Grant{}, err
	}
	g.Remaining = remaining
	return g, nil
}

// submit runs op through the poster and turns its outcome into the
// service's (result, replayed, error).
func submit[T any](ctx context.Context, s *Service, o ledger.Op) (T, bool, error) {
	var zero T
	out, err := s.l.Submit(ctx, o)
	if err != nil {
		return zero, false, err
	}
	if out.Rejection != nil {
		return zero, out.Replayed, out.Rejection
	}
	v, err := decodeResult[T](out)
	return v, out.Replayed, err
}

func newKey(key string) string {
	if key == "" {
		return "auto:" + uuid.NewString()
	}
	return key
}

// opAmount checks an amount a request asks to move: above zero and within
// the ledger's limit per operation, so a request is refused with a 422
// naming the field long before any counter could come near its limit.
func opAmount(field string, a ledger.Amount) error {
	if !a.IsPositive() {
		return invalid(field, "must be greater than zero")
	}
	if ledger.CheckOpAmount(a) != nil {
		return invalid(field, "at most %s per operation", ledger.MaxOpAmount)
	}
	return nil
}

func (s *Service) addGrant(ctx context.Context, key string, id WalletID, g NewGrant) (Grant, bool, error) {
	if err := opAmount("amount", g.Amount); err != nil {
		return Grant{}, false, err
	}
	if g.Kind != Paid && g.Kind != Promotional {
		return Grant{}, false, invalid("kind", "must be paid or promotional")
	}
	prio := 50
	if g.Priority != nil {
		prio = *g.Priority
		if prio < 0 || prio > 1000 {
			return Grant{}, false, invalid("priority", "from 0 to 1000")
		}
	}
	if g.CostBasis != nil && g.CostBasis.IsNegative() {
		return Grant{}, false, invalid("cost_basis", "must not be negative")
	}
	if err := checkText("description", g.Description, 500); err != nil {
		return Grant{}, false, err
	}
	if err := validMetadata("metadata", g.Metadata); err != nil {
		return Grant{}, false, err
	}
	var eff *time.Time
	if g.EffectiveAt != nil {
		t := g.EffectiveAt.UTC().Truncate(time.Microsecond)
		eff, g.EffectiveAt = &t, &t
	}
	if g.ExpiresAt != nil {
		t := g.ExpiresAt.UTC().Truncate(time.Microsecond)
		g.ExpiresAt = &t
		start := s.now()
		if eff != nil {
			start = *eff
		}
		if !t.After(start) {
			return Grant{}, false, invalid("expires_at", "must be after effective_at (or now)")
		}
	}
	w, err := s.wallet(ctx, id)
	if err != nil {
		return Grant{}, false, err
	}
	sys, err := s.system(ctx, w.Asset)
	if err != nil {
		return Grant{}, false, err
	}
	return submit[Grant](ctx, s, &addGrantOp{
		base:    base{key: newKey(key), walletID: id, customer: w.CustomerID, sys: sys},
		grantID: GrantID(uuid.New()), account: ledger.NewAccountID(), req: g, prio: prio, eff: eff,
	})
}

func (s *Service) voidGrant(ctx context.Context, key string, id GrantID) (Grant, bool, error) {
	g, err := s.grant(ctx, id)
	if err != nil {
		return Grant{}, false, err
	}
	w, err := s.wallet(ctx, g.WalletID)
	if err != nil {
		return Grant{}, false, err
	}
	sys, err := s.system(ctx, w.Asset)
	if err != nil {
		return Grant{}, false, err
	}
	return submit[Grant](ctx, s, &closeGrantOp{base: base{key: newKey(key), walletID: g.WalletID, customer: w.CustomerID, sys: sys}, grantID: id})
}

func (s *Service) debit(ctx context.Context, key string, id WalletID, d NewDebit) (Debit, bool, error) {
	if err := opAmount("amount", d.Amount); err != nil {
		return Debit{}, false, err
	}
	if err := checkText("description", d.Description, 500); err != nil {
		return Debit{}, false, err
	}
	if err := validMetadata("metadata", d.Metadata); err != nil {
		return Debit{}, false, err
	}
	w, err := s.wallet(ctx, id)
	if err != nil {
		return Debit{}, false, err
	}
	sys, err := s.system(ctx, w.Asset)
	if err != nil {
		return Debit{}, false, err
	}
	return submit[Debit](ctx, s, &debitOp{base: base{key: newKey(key), walletID: id, customer: w.CustomerID, sys: sys}, req: d})
}

func (s *Service) placeHold(ctx context.Context, key string, id WalletID, h NewHold) (Hold, bool, error) {
	if err := opAmount("amount", h.Amount); err != nil {
		return Hold{}, false, err
	}
	if h.ExpiresInSeconds != nil && (*h.ExpiresInSeconds < 1 || *h.ExpiresInSeconds > 7*24*3600) {
		return Hold{}, false, invalid("expires_in_seconds", "from 1 to 604800 (7 days)")
	}
	if err := validMetadata("metadata", h.Metadata); err != nil {
		return Hold{}, false, err
	}
	w, err := s.wallet(ctx, id)
	if err != nil {
		return Hold{}, false, err
	}
	sys, err := s.system(ctx, w.Asset)
	if err != nil {
		return Hold{}, false, err
	}
	return submit[Hold](ctx, s, &holdOp{base: base{key: newKey(key), walletID: id, customer: w.CustomerID, sys: sys}, holdID: ledger.NewHoldID(), req: h})
}

func (s *Service) hold(ctx context.Context, id HoldID) (Hold, error) {
	h, err := s.l.HoldByID(ctx, id)
	if errors.Is(err, fault.NotFound) {
		return Hold{}, fmt.Errorf("hold %s: %w", id, ErrNotFound)
	}
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

func (s *Service) holdAndWallet(ctx context.Context, id HoldID) (Hold, Wallet, error) {
	h, err := s.hold(ctx, id)
	if err != nil {
		return Hold{}, Wallet{}, err
	}
	w, err := s.wallet(ctx, h.WalletID)
	return h, w, err
}

func (s *Service) captureHold(ctx context.Context, key string, id HoldID, amount *ledger.Amount) (Hold, bool, error) {
	if amount != nil && amount.IsNegative() {
		return Hold{}, false, invalid("amount", "must not be negative")
	}
	if amount != nil && ledger.CheckOpAmount(*amount) != nil {
		return Hold{}, false, invalid("amount", "at most %s per operation", ledger.MaxOpAmount)
	}
	h, w, err := s.holdAndWallet(ctx, id)
	if err != nil {
		return Hold{}, false, err
	}
	lh, replayed, err := submit[ledger.Hold](ctx, s, &captureOp{&ledger.CaptureOp{IdempotencyKey: newKey(key), Hold: id, Owner: h.WalletID, Amount: amount, Route: w.CustomerID}})
	return holdView(lh), replayed, err
}

func (s *Service) voidHold(ctx context.Context, key string, id HoldID) (Hold, bool, error) {
	h, w, err := s.holdAndWallet(ctx, id)
	if err != nil {
		return Hold{}, false, err
	}
	lh, replayed, err := submit[ledger.Hold](ctx, s, &ledger.VoidOp{IdempotencyKey: newKey(key), Hold: id, Owner: h.WalletID, Route: w.CustomerID})
	return holdView(lh), replayed, err
}

// sweep expires due grants and settles balances that holds left on voided
// or expired grants once those holds closed. Keys carry the grant's
// debits_posted, so each state of a grant is swept once however many
// sweepers run.
func (s *Service) sweep(ctx context.Context) (int, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT g.id, g.wallet_id, w.customer_id, w.asset, g.status, bal.debits_posted::TEXT
		FROM grants g
		JOIN wallets w ON w.id = g.wallet_id
		JOIN ledger_balances bal ON bal.account_id = g.account_id AND bal.shard = 0
		WHERE (g.status = 'active' AND g.expires_at <= $1)
			OR (g.status <> 'active' AND bal.credits_posted - bal.debits_posted - bal.debits_pending > 0)
		ORDER BY g.expires_at
		LIMIT 1000`, s.now())
	if err != nil {
		return 0, fmt.Errorf("find grants to sweep: %w", err)
	}
	type due struct {
		grant          GrantID
		wallet         WalletID
		customer       string
		asset, status  string
		debitsSnapshot string
	}
	var list []due
	for rows.Next() {
		var d due
		if err := rows.Scan(&d.grant, &d.wallet, &d.customer, &d.asset, &d.status, &d.debitsSnapshot); err != nil {
			rows.Close()
			return 0, err
		}
		list = append(list, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	var pend []*ledger.Pending
	for _, d := range list {
		sys, err := s.system(ctx, d.asset)
		if err != nil {
			return 0, err
		}
		expire := d.status != string(GrantVoided)
		p, err := s.l.Enqueue(ctx, &closeGrantOp{
			base:    base{key: fmt.Sprintf("grant-sweep:%s:%s", d.grant, d.debitsSnapshot), walletID: d.wallet, customer: d.customer, sys: sys},
			grantID: d.grant, expire: expire, snapshot: d.debitsSnapshot,
		})
		if err != nil {
			return 0, err
		}
		pend = append(pend, p)
	}
	n, err := ledger.WaitPosted(ctx, pend)
	if err != nil {
		return n, fmt.Errorf("sweep grant: %w", err)
	}
	return n, nil
}
