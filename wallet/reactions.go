package wallet

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/ledger"
)

// Reactions: what a wallet does when its balance moves — threshold alerts
// at 50/80/100 %, depleted, overage started, and the auto top-up that a
// low balance starts — with the top-ups the batch starts or settles.

// Outbox topics of the wallet's reactions. Each is written in the batch
// that caused it, so it is sent exactly when that change commits.
const (
	TopicThresholdReached = "wallet.threshold_reached"
	TopicDepleted         = "wallet.depleted"
	TopicOverageStarted   = "wallet.overage_started"
)

// reactions is what a wallet's alerts and auto top-up remember between
// batches (wallets.reactions). Only the poster writes it, inside the batch
// whose change it reacts to, so two batches cannot both fire one alert: the
// second is serialized behind the first by the locks on the wallet's
// accounts and sees what the first wrote (or is retried if it read before).
type reactions struct {
	// Reference is the available balance right after the latest credit;
	// nil until the first one.
	Reference *ledger.Amount `json:"reference,omitempty"`
	// Fired counts the thresholds (in ascending order) fired for Reference.
	Fired    int  `json:"fired,omitempty"`
	Depleted bool `json:"depleted,omitempty"`
	// Overage is set by the first uncovered usage and cleared when the
	// receivable is back to zero (settled into an invoice or credited back).
	Overage bool `json:"overage,omitempty"`
	// RunwayLow is set when wallet.runway_low fired for Reference
	// (runway.go), and cleared with the thresholds by a credit.
	RunwayLow bool `json:"runway_low,omitempty"`

	TopupInFlight *TopupID   `json:"topup_in_flight,omitempty"`
	TopupDay      string     `json:"topup_day,omitempty"` // UTC date TopupsToday counts
	TopupsToday   int        `json:"topups_today,omitempty"`
	TopupFailures int        `json:"topup_failures,omitempty"` // consecutive
	TopupRetry    *time.Time `json:"topup_retry_after,omitempty"`
}

// WalletEvent is the data of wallet.depleted and wallet.overage_started.
type WalletEvent struct {
	WalletID   WalletID      `json:"wallet_id"`
	CustomerID string        `json:"customer_id"`
	Asset      string        `json:"asset"`
	Available  ledger.Amount `json:"available"`
	Overage    ledger.Amount `json:"overage"`
}

// ThresholdReached is the data of a wallet.threshold_reached event.
type ThresholdReached struct {
	WalletID    WalletID        `json:"wallet_id"`
	CustomerID  string          `json:"customer_id"`
	Asset       string          `json:"asset"`
	Threshold   int             `json:"threshold"`
	PercentUsed decimal.Decimal `json:"percent_used"`
	Available   ledger.Amount   `json:"available"`
	Reference   ledger.Amount   `json:"reference"`
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

// react runs after every op that may lower w's available balance or raise
// its overage: it fires the thresholds the balance has crossed since the
// reference (all of them, in ascending order, however far one op jumped),
// wallet.depleted, wallet.overage_started, and starts an auto top-up.
func (s *stage) react(b ledger.Batch, w *walletState) error {
	avail := available(b, w)
	var overage ledger.Amount
	if acc, ok := b.Account(w.overage); ok {
		overage = acc.Posted(ledger.Debit)
	}
	r := w.react
	ev := WalletEvent{WalletID: w.ID, CustomerID: w.CustomerID, Asset: w.Asset, Available: avail, Overage: overage}
	if r.Reference != nil && r.Reference.IsPositive() {
		if err := s.fireThresholds(b, w, avail); err != nil {
			return err
		}
		if !avail.IsPositive() && !r.Depleted {
			if err := b.Emit(TopicDepleted, w.ID, ev); err != nil {
				return err
			}
			s.setReactions(b, w, func(r *reactions) { r.Depleted = true })
		}
	}
	switch {
	case overage.IsPositive() && !r.Overage:
		if err := b.Emit(TopicOverageStarted, w.ID, ev); err != nil {
			return err
		}
		s.setReactions(b, w, func(r *reactions) { r.Overage = true })
	case overage.IsZero() && r.Overage:
		s.setReactions(b, w, func(r *reactions) { r.Overage = false })
	}
	return s.autoTopup(b, w, avail)
}

// fireThresholds emits wallet.threshold_reached for every threshold not
// yet fired that the use of w's reference has reached. Once all have fired
// (most usage events after the last one) it costs nothing.
func (s *stage) fireThresholds(b ledger.Batch, w *walletState, avail ledger.Amount) error {
	r := w.react
	if r.Fired >= len(w.AlertThresholds) {
		return nil
	}
	ref := r.Reference.Decimal()
	used := ref.Sub(avail.Decimal()).Mul(decimal.NewFromInt(100))
	fired := r.Fired
	for fired < len(w.AlertThresholds) {
		th := w.AlertThresholds[fired]
		// used/ref >= th/100, without dividing.
		if used.Cmp(ref.Mul(decimal.NewFromInt(int64(th)))) < 0 {
			break
		}
		if err := b.Emit(TopicThresholdReached, w.ID, ThresholdReached{
			WalletID: w.ID, CustomerID: w.CustomerID, Asset: w.Asset, Threshold: th,
			PercentUsed: used.DivRound(ref, 2), Available: avail, Reference: *r.Reference,
		}); err != nil {
			return err
		}
		fired++
	}
	if fired != r.Fired {
		s.setReactions(b, w, func(r *reactions) { r.Fired = fired })
	}
	return nil
}

// setReactions changes w's reactions for the op being applied: undone with
// the op if it fails, written by Flush if it succeeds.
func (s *stage) setReactions(b ledger.Batch, w *walletState, change func(*reactions)) {
	saved := w.react
	_, was := s.topups.reacted[w]
	b.OnUndo(func() {
		w.react = saved
		if !was {
			delete(s.topups.reacted, w)
		}
	})
	change(&w.react)
	s.topups.reacted[w] = struct{}{}
}

// rearm starts a new reference after a credit: percent used is 0 again and
// every threshold may fire once more.
func (s *stage) rearm(b ledger.Batch, w *walletState) {
	ref := available(b, w)
	s.setReactions(b, w, func(r *reactions) {
		r.Reference, r.Fired, r.Depleted, r.RunwayLow = &ref, 0, false, false
	})
}

type topupState struct {
	Topup
	isNew bool
}

// topupBook is the batch's reactions and top-ups: the top-ups ops settle or
// start, the immediate ones not yet invoiced of wallets whose cycle closes,
// and the wallets whose reaction state changed.
type topupBook struct {
	byID     map[TopupID]*topupState
	fresh    []*topupState
	dirty    map[*topupState]struct{}
	billable map[WalletID][]*topupState // immediate top-ups not yet invoiced
	reacted  map[*walletState]struct{}  // reactions to write
}

func (t *topupBook) reset() {
	t.byID, t.fresh, t.dirty = map[TopupID]*topupState{}, nil, map[*topupState]struct{}{}
	t.billable, t.reacted = map[WalletID][]*topupState{}, map[*walletState]struct{}{}
}

// autoTopup starts a top-up when w's rule says so: the balance is below the
// threshold, nothing is in flight, no failure backoff is running and the
// day's cap is not reached. One op at most starts one top-up, and while it
// is in flight nothing else starts another.
func (s *stage) autoTopup(b ledger.Batch, w *walletState, avail ledger.Amount) error {
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
	if err := w.price.topup(&t.Topup); err != nil {
		return err
	}
	s.topups.byID[id] = t
	s.topups.fresh = append(s.topups.fresh, t)
	b.OnUndo(func() {
		delete(s.topups.byID, id)
		s.topups.fresh = s.topups.fresh[:len(s.topups.fresh)-1]
	})
	s.setReactions(b, w, func(r *reactions) {
		r.TopupInFlight, r.TopupDay, r.TopupsToday = &id, day, today+1
	})
	return b.Emit(TopicTopupRequested, w.ID, t.Topup)
}

// size is the top-up that closes the whole gap below the threshold in one
// go: never one top-up per increment of usage.
func (r *AutoTopup) size(avail ledger.Amount) ledger.Amount {
	if r.TargetBalance != nil {
		return r.TargetBalance.Sub(avail)
	}
	gap := r.Threshold.Sub(avail).Decimal()
	// An exact ceiling: Div rounds to 16 places, which for a large amount
	// turns a gap a few 10^-12 past one amount into exactly one amount and
	// leaves the wallet just under its threshold.
	n, rem := gap.QuoRem(r.Amount.Decimal(), 0)
	if rem.Sign() > 0 {
		n = n.Add(decimal.NewFromInt(1))
	}
	if !n.IsPositive() {
		n = decimal.NewFromInt(1)
	}
	a, err := ledger.NewAmount(r.Amount.Decimal().Mul(n))
	if err != nil {
		return ledger.MaxOpAmount // beyond what an amount holds: capped anyway
	}
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

// priceColumns and priceJoin add a wallet's asset price to the stage's
// wallet query; NULLs for unpriced assets.
const (
	priceColumns = `a.currency, a.unit_price`
	priceJoin    = `LEFT JOIN assets a ON a.code = w.asset AND a.kind = 'credits'`
)

type priceScan struct {
	currency *string
	unit     *ledger.Amount
}

func (p *priceScan) dest() []any { return []any{&p.currency, &p.unit} }

func (p *priceScan) price() *creditPrice {
	if p.currency == nil || p.unit == nil {
		return nil
	}
	return &creditPrice{currency: *p.currency, unit: *p.unit}
}

// loadTopups reads the top-ups ops settle, and the immediate top-ups not yet
// invoiced of wallets whose cycle closes.
func (s *stage) loadTopups(ctx context.Context, tx pgx.Tx, ids, closing []uuid.UUID) error {
	if len(ids) == 0 && len(closing) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, topupSelect+` WHERE id = ANY($1)
		OR (wallet_id = ANY($2) AND payment = 'immediate' AND status = 'succeeded' AND invoice_id IS NULL)
		ORDER BY created_at, id`, ids, closing)
	if err != nil {
		return fmt.Errorf("load top-ups: %w", err)
	}
	list, err := collect(rows, scanTopup)
	if err != nil {
		return fmt.Errorf("load top-ups: %w", err)
	}
	for _, t := range list {
		ts := &topupState{Topup: t}
		s.topups.byID[t.ID] = ts
		if t.Payment == PaymentImmediate && t.Status == TopupSucceeded && t.InvoiceID == nil {
			s.topups.billable[t.WalletID] = append(s.topups.billable[t.WalletID], ts)
		}
	}
	return nil
}

func (s *stage) flushTopups(ctx context.Context, b ledger.StageBatch) error {
	tx := b.Tx()
	if n := len(s.topups.fresh); n > 0 {
		ids, wallets := make([]uuid.UUID, n), make([]uuid.UUID, n)
		customers, assets, kinds, payments, statuses := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		amounts, avail := make([]ledger.Amount, n), make([]ledger.Amount, n)
		prices, currencies := make([]*ledger.Amount, n), make([]*string, n)
		for i, t := range s.topups.fresh {
			ids[i], wallets[i], customers[i], assets[i] = uuid.UUID(t.ID), uuid.UUID(t.WalletID), t.CustomerID, t.Asset
			kinds[i], payments[i], statuses[i], amounts[i], avail[i] = string(t.Kind), string(t.Payment), string(t.Status), t.Amount, t.AvailableAtRequest
			prices[i], currencies[i] = t.Price, t.Currency
		}
		if _, err := tx.Exec(ctx, `INSERT INTO topups (id, wallet_id, customer_id, asset, amount, kind, payment, status, available_at_request, created_at,
				price, currency)
			SELECT u.id, u.w, u.c, u.a, u.amt, u.k, u.p, u.st, u.av, $10, u.pr, u.cur
			FROM unnest($1::UUID[], $2::UUID[], $3::TEXT[], $4::TEXT[], $5::NUMERIC[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::NUMERIC[],
				$11::NUMERIC[], $12::TEXT[]) AS u(id, w, c, a, amt, k, p, st, av, pr, cur)`,
			ids, wallets, customers, assets, amounts, kinds, payments, statuses, avail, b.Now(), prices, currencies); err != nil {
			return fmt.Errorf("insert top-ups: %w", err)
		}
	}
	var changed []*topupState
	for t := range s.topups.dirty {
		if !t.isNew {
			changed = append(changed, t)
		}
	}
	if n := len(changed); n > 0 {
		ids, statuses := make([]uuid.UUID, n), make([]string, n)
		grants, invoices := make([]*uuid.UUID, n), make([]*uuid.UUID, n)
		reasons := make([]*string, n)
		done := make([]*time.Time, n)
		for i, t := range changed {
			ids[i], statuses[i], done[i], reasons[i] = uuid.UUID(t.ID), string(t.Status), t.CompletedAt, nullText(t.FailureReason)
			if t.GrantID != nil {
				g := uuid.UUID(*t.GrantID)
				grants[i] = &g
			}
			if t.InvoiceID != nil {
				v := uuid.UUID(*t.InvoiceID)
				invoices[i] = &v
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE topups AS t SET status = u.st, grant_id = u.g, invoice_id = u.inv,
				failure_reason = u.r, completed_at = u.d
			FROM unnest($1::UUID[], $2::TEXT[], $3::UUID[], $4::UUID[], $5::TEXT[], $6::TIMESTAMPTZ[]) AS u(id, st, g, inv, r, d)
			WHERE t.id = u.id`, ids, statuses, grants, invoices, reasons, done); err != nil {
			return fmt.Errorf("update top-ups: %w", err)
		}
	}
	return nil
}
