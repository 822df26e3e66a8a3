package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/internal/cursor"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
)

// TopupID names a top-up.
type TopupID uuid.UUID

func (id TopupID) String() string                { return uuid.UUID(id).String() }
func (id TopupID) MarshalText() ([]byte, error)  { return []byte(id.String()), nil }
func (id *TopupID) UnmarshalText(b []byte) error { return (*uuid.UUID)(id).UnmarshalText(b) }

// ParseTopupID parses a top-up id from a URL.
func ParseTopupID(s string) (TopupID, error) {
	u, err := uuid.Parse(s)
	return TopupID(u), err
}

// Payment is how a top-up is paid for.
type Payment string

const (
	// PaymentConfirm: topup.requested goes to the app, which charges the
	// customer and confirms (or fails) the top-up; credits arrive then.
	PaymentConfirm Payment = "confirm"
	// PaymentImmediate: credited at once, owed on the next invoice.
	PaymentImmediate Payment = "immediate"
)

// TopupStatus is a top-up's state.
type TopupStatus string

const (
	TopupRequested TopupStatus = "requested" // in flight
	TopupSucceeded TopupStatus = "succeeded"
	TopupFailed    TopupStatus = "failed"
)

// Outbox topics and rejection code of top-ups.
const (
	TopicTopupRequested = "topup.requested"
	TopicTopupSucceeded = "topup.succeeded"
	TopicTopupFailed    = "topup.failed"
	CodeTopupClosed     = "topup_closed"
	KindTopup           = "topup"
	KindTopupFailure    = "topup_failure"
)

// defaultTopupsPerDay caps a rule that names no cap: a runaway loop of
// top-ups is the expensive failure of auto top-up.
const defaultTopupsPerDay = 10

// AutoTopup is a wallet's auto top-up rule: when the available balance falls
// below Threshold, buy Amount (in as many multiples as it takes to get back
// to the threshold) or whatever brings the balance up to TargetBalance.
type AutoTopup struct {
	WalletID      WalletID       `json:"wallet_id"`
	Enabled       bool           `json:"enabled"`
	Threshold     ledger.Amount  `json:"threshold"`
	Amount        *ledger.Amount `json:"amount,omitempty"`
	TargetBalance *ledger.Amount `json:"target_balance,omitempty"`
	Kind          GrantKind      `json:"kind"`
	Payment       Payment        `json:"payment"`
	MaxPerDay     int            `json:"max_per_day"`
	UpdatedAt     time.Time      `json:"updated_at"`
	State         AutoTopupState `json:"state"`
}

// AutoTopupState is what the rule is doing now.
type AutoTopupState struct {
	InFlight            *TopupID   `json:"in_flight,omitempty"`
	Day                 string     `json:"day,omitempty"`
	TopupsToday         int        `json:"topups_today"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	RetryAfter          *time.Time `json:"retry_after,omitempty"`
}

// NewAutoTopup is what SetAutoTopup needs.
type NewAutoTopup struct {
	Enabled       *bool          `json:"enabled,omitempty"` // default true
	Threshold     *ledger.Amount `json:"threshold"`
	Amount        *ledger.Amount `json:"amount,omitempty"`
	TargetBalance *ledger.Amount `json:"target_balance,omitempty"`
	Kind          GrantKind      `json:"kind,omitempty"`    // default paid
	Payment       Payment        `json:"payment,omitempty"` // default confirm
	MaxPerDay     *int           `json:"max_per_day,omitempty"`
}

// Topup is one top-up an auto top-up rule started.
type Topup struct {
	ID                 TopupID       `json:"id"`
	WalletID           WalletID      `json:"wallet_id"`
	CustomerID         string        `json:"customer_id"`
	Asset              string        `json:"asset"`
	Amount             ledger.Amount `json:"amount"`
	Kind               GrantKind     `json:"kind"`
	Payment            Payment       `json:"payment"`
	Status             TopupStatus   `json:"status"`
	AvailableAtRequest ledger.Amount `json:"available_at_request"`
	GrantID            *GrantID      `json:"grant_id,omitempty"`
	InvoiceID          *InvoiceID    `json:"invoice_id,omitempty"`
	FailureReason      string        `json:"failure_reason,omitempty"`
	CreatedAt          time.Time     `json:"created_at"`
	CompletedAt        *time.Time    `json:"completed_at,omitempty"`
}

// size is the top-up that closes the whole gap below the threshold in one
// go: never one top-up per increment of usage.
func (r *AutoTopup) size(avail ledger.Amount) ledger.Amount {
	if r.TargetBalance != nil {
		return r.TargetBalance.Sub(avail)
	}
	gap := r.Threshold.Sub(avail).Decimal()
	n := gap.Div(r.Amount.Decimal()).Ceil()
	if !n.IsPositive() {
		n = decimal.NewFromInt(1)
	}
	a, _ := ledger.NewAmount(r.Amount.Decimal().Mul(n))
	return a
}

// capped is a top-up's size within what one operation may move: a wallet
// deep in overage is brought up by several top-ups, one at a time.
func capped(a ledger.Amount) ledger.Amount { return a.Min(ledger.MaxOpAmount) }

// topupBackoff is how long a rule waits after n consecutive failed top-ups:
// a minute, doubling, at most six hours.
func topupBackoff(n int) time.Duration {
	return min(time.Minute<<min(n-1, 16), 6*time.Hour)
}

type topupState struct {
	Topup
	isNew bool
}

// autoTopup starts a top-up when w's rule says so: the balance is below the
// threshold, nothing is in flight, no failure backoff is running and the
// day's cap is not reached. One op at most starts one top-up, and while it
// is in flight nothing else starts another.
func (s *stage) autoTopup(b *ledger.Batch, w *walletState, avail ledger.Amount) error {
	r := w.rule
	if r == nil || !r.Enabled || avail.Cmp(r.Threshold) >= 0 {
		return nil
	}
	st, now := w.react, b.Now()
	if st.TopupInFlight != nil || (st.TopupRetry != nil && now.Before(*st.TopupRetry)) {
		return nil
	}
	day, today := now.Format(time.DateOnly), st.TopupsToday
	if st.TopupDay != day {
		today = 0
	}
	if today >= r.MaxPerDay {
		return nil
	}
	amount := capped(r.size(avail))
	if !amount.IsPositive() {
		return nil
	}
	id := TopupID(uuid.New())
	t := &topupState{isNew: true, Topup: Topup{
		ID: id, WalletID: w.ID, CustomerID: w.CustomerID, Asset: w.Asset, Amount: amount, Kind: r.Kind,
		Payment: r.Payment, Status: TopupRequested, AvailableAtRequest: avail, CreatedAt: now,
	}}
	s.topups[id] = t
	s.newTopups = append(s.newTopups, t)
	b.OnUndo(func() {
		delete(s.topups, id)
		s.newTopups = s.newTopups[:len(s.newTopups)-1]
	})
	s.setReactions(b, w, func(r *reactions) {
		r.TopupInFlight, r.TopupDay, r.TopupsToday = &id, day, today+1
	})
	return b.Emit(TopicTopupRequested, w.ID, t.Topup)
}

// settleTopupOp confirms a top-up (crediting it) or records its failure.
type settleTopupOp struct {
	base
	topupID TopupID
	confirm bool
	reason  string
}

func (o *settleTopupOp) Kind() string {
	if o.confirm {
		return KindTopup
	}
	return KindTopupFailure
}

// Fingerprint names the top-up only: settling is idempotent by what it
// names, so failing it again with other words replays the first failure
// (and its reason) rather than refusing the retry as a key conflict the
// caller, who sent no key, could not resolve.
func (o *settleTopupOp) Fingerprint() []byte {
	return ledger.Fingerprint(o.Kind(), o.topupID)
}
func (o *settleTopupOp) Declare(d *ledger.Decl) {
	d.Account(o.sys.paid)
	d.Account(o.sys.promotional)
	d.Account(billableAccount(o.walletID))
}

func (o *settleTopupOp) Apply(_ context.Context, b *ledger.Batch) (any, error) {
	s, w, err := walletFor(b, o.walletID)
	if err != nil {
		return nil, err
	}
	t := s.topups[o.topupID]
	if t == nil {
		return nil, fmt.Errorf("top-up %s: %w", o.topupID, ErrNotFound)
	}
	if t.Status != TopupRequested {
		return nil, ledger.Reject(CodeTopupClosed, "top-up %s has already %s", t.ID, t.Status)
	}
	now := b.Now()
	b.Describe(w.ID, "auto top-up "+t.ID.String(), nil)
	saved := t.Topup
	s.dirtyTopups[t] = struct{}{}
	b.OnUndo(func() { t.Topup = saved; delete(s.dirtyTopups, t) })
	t.CompletedAt = &now
	if !o.confirm {
		t.Status, t.FailureReason = TopupFailed, o.reason
		s.setReactions(b, w, func(r *reactions) {
			if r.TopupInFlight != nil && *r.TopupInFlight == t.ID {
				r.TopupInFlight = nil
			}
			r.TopupFailures++
			retry := now.Add(topupBackoff(r.TopupFailures))
			r.TopupRetry = &retry
		})
		return t.Topup, b.Emit(TopicTopupFailed, w.ID, t.Topup)
	}
	funding, custom := o.sys.funding(t.Kind), false
	if t.Payment == PaymentImmediate {
		// Not paid yet: the customer owes it, on the next invoice.
		funding, custom = billableAccount(w.ID), true
	}
	meta, _ := json.Marshal(map[string]string{"topup_id": t.ID.String()})
	g, err := s.creditGrant(b, w, funding, custom, ledger.NewAccountID(), Grant{
		ID: GrantID(uuid.New()), Kind: t.Kind, Amount: t.Amount, Priority: 50, EffectiveAt: now,
		Description: "auto top-up", Metadata: meta,
	})
	if err != nil {
		return nil, err
	}
	t.Status, t.GrantID = TopupSucceeded, &g.ID
	if t.Payment == PaymentImmediate {
		s.billable[w.ID] = append(s.billable[w.ID], t)
		b.OnUndo(func() { s.billable[w.ID] = s.billable[w.ID][:len(s.billable[w.ID])-1] })
	}
	s.rearm(b, w)
	s.setReactions(b, w, func(r *reactions) {
		if r.TopupInFlight != nil && *r.TopupInFlight == t.ID {
			r.TopupInFlight = nil
		}
		r.TopupFailures, r.TopupRetry = 0, nil
	})
	return t.Topup, b.Emit(TopicTopupSucceeded, w.ID, t.Topup)
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

// roundingAccount carries the part of an invoice below the currency's
// minor unit to the next invoice (debit-normal, may go either way).
func roundingAccount(w WalletID) ledger.AccountID { return walletAccountID(w, "rounding") }

// insertWalletAccounts opens wallet w's billable and rounding accounts in
// tx, unless they are there.
func insertWalletAccounts(ctx context.Context, tx pgx.Tx, w WalletID, asset string) error {
	for _, a := range []ledger.AccountSpec{
		{ID: billableAccount(w), Code: "billable:" + w.String(), Asset: asset, Owner: w, Normal: ledger.Debit},
		{ID: roundingAccount(w), Code: "rounding:" + w.String(), Asset: asset, Owner: w, Normal: ledger.Debit},
	} {
		if _, err := ledger.InsertAccount(ctx, tx, a); err != nil {
			return err
		}
	}
	return nil
}

// ensureWalletAccounts opens w's billable and rounding accounts if they are
// not there yet: wallets made before they existed get them on first use.
// It is remembered in the bounded wallet map, not in the ledger's account
// cache, which is for system accounts and would grow with every wallet a
// monthly close touches.
func (s *Service) ensureWalletAccounts(ctx context.Context, w Wallet) error {
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

// SetAutoTopup creates or replaces a wallet's auto top-up rule.
func (s *Service) SetAutoTopup(ctx context.Context, id WalletID, req NewAutoTopup) (AutoTopup, error) {
	r := AutoTopup{WalletID: id, Enabled: true, Kind: Paid, Payment: PaymentConfirm, MaxPerDay: defaultTopupsPerDay}
	if req.Enabled != nil {
		r.Enabled = *req.Enabled
	}
	if req.Threshold == nil || req.Threshold.IsNegative() {
		return AutoTopup{}, invalid("threshold", "required, zero or more")
	}
	if ledger.CheckOpAmount(*req.Threshold) != nil {
		return AutoTopup{}, invalid("threshold", "at most %s", ledger.MaxOpAmount)
	}
	r.Threshold = *req.Threshold
	switch {
	case (req.Amount == nil) == (req.TargetBalance == nil):
		return AutoTopup{}, invalid("amount", "give exactly one of amount and target_balance")
	case req.Amount != nil:
		if err := opAmount("amount", *req.Amount); err != nil {
			return AutoTopup{}, err
		}
	case req.TargetBalance != nil && ledger.CheckOpAmount(*req.TargetBalance) != nil:
		return AutoTopup{}, invalid("target_balance", "at most %s", ledger.MaxOpAmount)
	case req.TargetBalance != nil && req.TargetBalance.Cmp(r.Threshold) <= 0:
		return AutoTopup{}, invalid("target_balance", "must be above the threshold")
	}
	r.Amount, r.TargetBalance = req.Amount, req.TargetBalance
	switch req.Kind {
	case "":
	case Paid, Promotional:
		r.Kind = req.Kind
	default:
		return AutoTopup{}, invalid("kind", "must be paid or promotional")
	}
	switch req.Payment {
	case "":
	case PaymentConfirm, PaymentImmediate:
		r.Payment = req.Payment
	default:
		return AutoTopup{}, invalid("payment", "must be confirm or immediate")
	}
	if req.MaxPerDay != nil {
		if *req.MaxPerDay < 1 || *req.MaxPerDay > 1000 {
			return AutoTopup{}, invalid("max_per_day", "from 1 to 1000")
		}
		r.MaxPerDay = *req.MaxPerDay
	}
	w, err := s.wallet(ctx, id)
	if err != nil {
		return AutoTopup{}, err
	}
	if err := s.ensureWalletAccounts(ctx, w); err != nil {
		return AutoTopup{}, err
	}
	r.UpdatedAt = s.now()
	if _, err := s.db.Pool.Exec(ctx, `INSERT INTO auto_topup_rules (wallet_id, enabled, threshold, amount, target_balance, kind, payment, max_per_day, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (wallet_id) DO UPDATE SET enabled = excluded.enabled, threshold = excluded.threshold, amount = excluded.amount,
			target_balance = excluded.target_balance, kind = excluded.kind, payment = excluded.payment,
			max_per_day = excluded.max_per_day, updated_at = excluded.updated_at`,
		id, r.Enabled, r.Threshold, r.Amount, r.TargetBalance, string(r.Kind), string(r.Payment), r.MaxPerDay, r.UpdatedAt); err != nil {
		return AutoTopup{}, fmt.Errorf("save auto top-up: %w", err)
	}
	return s.AutoTopup(ctx, id)
}

const ruleColumns = `r.enabled, r.threshold, r.amount, r.target_balance, r.kind, r.payment, r.max_per_day, r.updated_at`

// scanRule reads ruleColumns from a LEFT JOIN: nil when there is no rule.
type ruleScan struct {
	enabled        *bool
	threshold      *ledger.Amount
	amount, target *ledger.Amount
	kind, payment  *string
	maxPerDay      *int32
	updated        *time.Time
}

func (r *ruleScan) dest() []any {
	return []any{&r.enabled, &r.threshold, &r.amount, &r.target, &r.kind, &r.payment, &r.maxPerDay, &r.updated}
}

func (r *ruleScan) rule(w WalletID) *AutoTopup {
	if r.enabled == nil {
		return nil
	}
	return &AutoTopup{WalletID: w, Enabled: *r.enabled, Threshold: *r.threshold, Amount: r.amount, TargetBalance: r.target,
		Kind: GrantKind(*r.kind), Payment: Payment(*r.payment), MaxPerDay: int(*r.maxPerDay), UpdatedAt: r.updated.UTC()}
}

// AutoTopup reads a wallet's rule and what it is doing; ErrNotFound when the
// wallet has none.
func (s *Service) AutoTopup(ctx context.Context, id WalletID) (AutoTopup, error) {
	var (
		rs    ruleScan
		react []byte
	)
	err := s.db.Pool.QueryRow(ctx, `SELECT w.reactions, `+ruleColumns+`
		FROM wallets w LEFT JOIN auto_topup_rules r ON r.wallet_id = w.id WHERE w.id = $1`, id).
		Scan(append([]any{&react}, rs.dest()...)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return AutoTopup{}, fmt.Errorf("wallet %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return AutoTopup{}, fmt.Errorf("read auto top-up: %w", err)
	}
	r := rs.rule(id)
	if r == nil {
		return AutoTopup{}, fmt.Errorf("auto top-up of wallet %s: %w", id, ErrNotFound)
	}
	st, err := decodeReactions(react)
	if err != nil {
		return AutoTopup{}, err
	}
	r.State = AutoTopupState{InFlight: st.TopupInFlight, Day: st.TopupDay, TopupsToday: st.TopupsToday,
		ConsecutiveFailures: st.TopupFailures, RetryAfter: st.TopupRetry}
	if st.TopupDay != s.now().Format(time.DateOnly) {
		r.State.Day, r.State.TopupsToday = "", 0
	}
	return *r, nil
}

func decodeReactions(raw []byte) (reactions, error) {
	var r reactions
	if len(raw) == 0 {
		return r, nil
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, fmt.Errorf("wallet reactions: %w", err)
	}
	return r, nil
}

const topupSelect = `SELECT id, wallet_id, customer_id, asset, amount, kind, payment, status, available_at_request,
	grant_id, invoice_id, failure_reason, created_at, completed_at FROM topups`

func scanTopup(row pgx.Row) (Topup, error) {
	var (
		t                     Topup
		kind, payment, status string
		reason                *string
	)
	if err := row.Scan(&t.ID, &t.WalletID, &t.CustomerID, &t.Asset, &t.Amount, &kind, &payment, &status, &t.AvailableAtRequest,
		&t.GrantID, &t.InvoiceID, &reason, &t.CreatedAt, &t.CompletedAt); err != nil {
		return t, err
	}
	t.Kind, t.Payment, t.Status = GrantKind(kind), Payment(payment), TopupStatus(status)
	if reason != nil {
		t.FailureReason = *reason
	}
	t.CreatedAt = t.CreatedAt.UTC()
	if t.CompletedAt != nil {
		c := t.CompletedAt.UTC()
		t.CompletedAt = &c
	}
	return t, nil
}

// Topup reads a top-up.
func (s *Service) Topup(ctx context.Context, id TopupID) (Topup, error) {
	t, err := scanTopup(s.db.Pool.QueryRow(ctx, topupSelect+` WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Topup{}, fmt.Errorf("top-up %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Topup{}, fmt.Errorf("read top-up: %w", err)
	}
	return t, nil
}

// Topups lists a wallet's top-ups, newest first, limit at a time, after
// the cursor (nil: from the newest). It returns the next page's cursor, or
// nil on the last page.
func (s *Service) Topups(ctx context.Context, id WalletID, after *cursor.Cursor, limit int) ([]Topup, *cursor.Cursor, error) {
	if _, err := s.wallet(ctx, id); err != nil {
		return nil, nil, err
	}
	q, args := pageSQL(topupSelect+` WHERE wallet_id = $1`, []any{id}, after, limit)
	rows, err := s.db.Pool.Query(ctx, q, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("list top-ups: %w", err)
	}
	ts, err := collect(rows, scanTopup)
	if err != nil {
		return nil, nil, fmt.Errorf("list top-ups: %w", err)
	}
	ts, next := cursor.Page(ts, limit, func(t Topup) cursor.Cursor { return cursor.Cursor{At: t.CreatedAt, ID: uuid.UUID(t.ID)} })
	return ts, next, nil
}

// pageSQL appends to q (whose arguments are args) the page after the
// cursor, newest first, one row more than limit so cursor.Page can tell
// whether another page follows.
func pageSQL(q string, args []any, after *cursor.Cursor, limit int) (string, []any) {
	if after != nil {
		q += fmt.Sprintf(` AND (created_at, id) < ($%d, $%d)`, len(args)+1, len(args)+2)
		args = append(args, after.At, after.ID)
	}
	q += fmt.Sprintf(` ORDER BY created_at DESC, id DESC LIMIT $%d`, len(args)+1)
	return q, append(args, limit+1)
}

// collect reads every row with scan; an empty result is an empty slice
// (JSON []), not nil.
func collect[T any](rows pgx.Rows, scan func(pgx.Row) (T, error)) ([]T, error) {
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []T{}
	}
	return out, nil
}

// ConfirmTopup credits a requested top-up: the app has been paid. Confirming
// twice is a replay of the first; confirming a failed top-up is refused
// (topup_closed).
func (s *Service) ConfirmTopup(ctx context.Context, id TopupID) (Topup, bool, error) {
	return s.settleTopup(ctx, id, true, "")
}

// FailTopup records that a requested top-up could not be paid: the rule
// backs off before it tries again.
func (s *Service) FailTopup(ctx context.Context, id TopupID, reason string) (Topup, bool, error) {
	if err := checkText("reason", reason, 500); err != nil {
		return Topup{}, false, err
	}
	return s.settleTopup(ctx, id, false, reason)
}

func (s *Service) settleTopup(ctx context.Context, id TopupID, confirm bool, reason string) (Topup, bool, error) {
	t, err := s.Topup(ctx, id)
	if err != nil {
		return Topup{}, false, err
	}
	op, err := s.settleOp(ctx, t, confirm, reason)
	if err != nil {
		return Topup{}, false, err
	}
	return submit[Topup](ctx, s, op)
}

func (s *Service) settleOp(ctx context.Context, t Topup, confirm bool, reason string) (*settleTopupOp, error) {
	w, err := s.wallet(ctx, t.WalletID)
	if err != nil {
		return nil, err
	}
	if err := s.ensureWalletAccounts(ctx, w); err != nil {
		return nil, err
	}
	sys, err := s.system(ctx, w.Asset)
	if err != nil {
		return nil, err
	}
	key := "topup-fail:" + t.ID.String()
	if confirm {
		key = "topup-confirm:" + t.ID.String()
	}
	return &settleTopupOp{base: base{key: key, walletID: w.ID, customer: w.CustomerID, sys: sys},
		topupID: t.ID, confirm: confirm, reason: reason}, nil
}

// HandleOutbox credits immediate top-ups as their topup.requested messages
// are relayed. It runs at least once per message; the op's key makes the
// credit happen once. All are enqueued before any is waited for, so they
// share batches while the relay's transaction stays open; one the app
// failed meanwhile is rejected (topup_closed) and skipped.
func (s *Service) HandleOutbox(ctx context.Context, _ pgx.Tx, msgs []ledger.OutboxMessage) error {
	var pend []*ledger.Pending
	for _, m := range msgs {
		if m.Topic != TopicTopupRequested {
			continue
		}
		var t Topup
		if err := json.Unmarshal(m.Payload, &t); err != nil {
			return fmt.Errorf("outbox %s: %w", m.ID, err)
		}
		if t.Payment != PaymentImmediate {
			continue
		}
		op, err := s.settleOp(ctx, t, true, "")
		if err != nil {
			return fmt.Errorf("credit top-up %s: %w", t.ID, err)
		}
		p, err := s.l.Enqueue(ctx, op)
		if err != nil {
			return fmt.Errorf("credit top-up %s: %w", t.ID, err)
		}
		pend = append(pend, p)
	}
	if _, err := ledger.WaitPosted(ctx, pend); err != nil {
		return fmt.Errorf("credit top-ups: %w", err)
	}
	return nil
}
