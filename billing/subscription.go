package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/wallet"
)

// A subscription puts a customer on a plan. Its life is a row of phases,
// each a stretch on one plan whose periods run from the phase's start
// every interval; a change of plan ends one phase and starts the next. The
// row keeps the current period, so the scheduler finds due ones with one
// index. Every periodic thing — closing a period into an invoice, starting
// the next with its included credits — is a ledger operation keyed by the
// subscription and the period, so it happens once however many
// schedulers, API calls and restarts ask.

// Subscription statuses.
const (
	SubActive   = "active"
	SubCanceled = "canceled"
)

// Subscription is a customer's subscription.
type Subscription struct {
	ID                 uuid.UUID        `json:"id"`
	CustomerID         string           `json:"customer_id"`
	PlanCode           string           `json:"plan_code"`
	PlanVersion        int              `json:"plan_version"` // of the current period
	Status             string           `json:"status"`
	StartAt            time.Time        `json:"start_at"`
	CurrentPeriodStart time.Time        `json:"current_period_start"`
	CurrentPeriodEnd   time.Time        `json:"current_period_end"`
	CancelAtPeriodEnd  bool             `json:"cancel_at_period_end"`
	NextPlanCode       *string          `json:"next_plan_code"` // a change at the period's end
	OverageLimit       *ledger.Amount   `json:"overage_limit"`
	PriceOverrides     []metering.Price `json:"price_overrides"`
	Wallets            []SubWallet      `json:"wallets"`
	CanceledAt         *time.Time       `json:"canceled_at"`
	EndedAt            *time.Time       `json:"ended_at"`
	CreatedAt          time.Time        `json:"created_at"`

	phases        []phase
	grantedPeriod *time.Time // the period whose included credits were granted
}

// SubWallet is a wallet a subscription bills.
type SubWallet struct {
	Asset    string          `json:"asset"`
	WalletID wallet.WalletID `json:"wallet_id"`
}

// phase is a stretch of a subscription on one plan.
type phase struct {
	seq   int
	plan  string
	start time.Time
	end   *time.Time
}

// phaseAt is the phase that holds t, or nil.
func (s *Subscription) phaseAt(t time.Time) *phase {
	for i := range s.phases {
		p := &s.phases[i]
		if !t.Before(p.start) && (p.end == nil || t.Before(*p.end)) {
			return p
		}
	}
	return nil
}

// current is the phase of the current period.
func (s *Subscription) current() *phase {
	if p := s.phaseAt(s.CurrentPeriodStart); p != nil {
		return p
	}
	return &s.phases[len(s.phases)-1]
}

const subSelect = `SELECT s.id, s.customer_id, s.plan_code, s.status, s.start_at, s.current_period_start, s.current_period_end,
	s.cancel_at_period_end, s.next_plan_code, s.overage_limit, s.granted_period_start, s.canceled_at, s.ended_at, s.created_at
	FROM subscriptions s `

func scanSub(r pgx.Row) (*Subscription, error) {
	var s Subscription
	if err := r.Scan(&s.ID, &s.CustomerID, &s.PlanCode, &s.Status, &s.StartAt, &s.CurrentPeriodStart, &s.CurrentPeriodEnd,
		&s.CancelAtPeriodEnd, &s.NextPlanCode, &s.OverageLimit, &s.grantedPeriod, &s.CanceledAt, &s.EndedAt, &s.CreatedAt); err != nil {
		return nil, err
	}
	for _, t := range []*time.Time{&s.StartAt, &s.CurrentPeriodStart, &s.CurrentPeriodEnd, &s.CreatedAt} {
		*t = t.UTC()
	}
	for _, t := range []*time.Time{s.grantedPeriod, s.CanceledAt, s.EndedAt} {
		if t != nil {
			*t = t.UTC()
		}
	}
	return &s, nil
}

// readSubs reads subscriptions by a where clause, with their phases; lock
// takes them FOR UPDATE (a batch's ops on them).
func readSubs(ctx context.Context, q querier, where string, lock bool, args ...any) ([]*Subscription, error) {
	sql := subSelect + where + ` ORDER BY s.created_at, s.id`
	if lock {
		sql += ` FOR UPDATE`
	}
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read subscriptions: %w", err)
	}
	subs, err := pg.Collect(rows, scanSub)
	if err != nil || len(subs) == 0 {
		return subs, err
	}
	byID := map[uuid.UUID]*Subscription{}
	ids := make([]uuid.UUID, len(subs))
	for i, s := range subs {
		byID[s.ID], ids[i] = s, s.ID
	}
	rows, err = q.Query(ctx, `SELECT subscription_id, seq, plan_code, start_at, end_at FROM subscription_phases
		WHERE subscription_id = ANY($1) ORDER BY subscription_id, seq`, ids)
	if err != nil {
		return nil, fmt.Errorf("read phases: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id uuid.UUID
			p  phase
		)
		if err := rows.Scan(&id, &p.seq, &p.plan, &p.start, &p.end); err != nil {
			return nil, err
		}
		p.start = p.start.UTC()
		if p.end != nil {
			e := p.end.UTC()
			p.end = &e
		}
		byID[id].phases = append(byID[id].phases, p)
	}
	return subs, rows.Err()
}

// Subscription reads a subscription, with its overrides and wallets.
func (s *Service) Subscription(ctx context.Context, id uuid.UUID) (Subscription, error) {
	subs, err := readSubs(ctx, s.db.Pool, `WHERE s.id = $1`, false, id)
	if err != nil {
		return Subscription{}, err
	}
	if len(subs) == 0 {
		return Subscription{}, fault.NotFoundf("no subscription %s", id)
	}
	return s.complete(ctx, subs[0])
}

// Subscriptions lists a customer's subscriptions, oldest first.
func (s *Service) Subscriptions(ctx context.Context, customerID string) ([]Subscription, error) {
	if _, err := s.wallets.Customer(ctx, customerID); err != nil {
		return nil, err
	}
	subs, err := readSubs(ctx, s.db.Pool, `WHERE s.customer_id = $1`, false, customerID)
	if err != nil {
		return nil, err
	}
	out := make([]Subscription, 0, len(subs))
	for _, sub := range subs {
		v, err := s.complete(ctx, sub)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// complete adds what the answer shows beyond the row: the plan version of
// the current period, the overrides and the wallets.
func (s *Service) complete(ctx context.Context, sub *Subscription) (Subscription, error) {
	out := *sub
	plans, err := s.plans(ctx, []string{out.current().plan})
	if err != nil {
		return out, err
	}
	if len(plans) == 1 {
		out.PlanCode = plans[0].code
		out.PlanVersion = plans[0].at(out.CurrentPeriodStart).Version
	}
	if out.PriceOverrides, err = s.meters.ScopePrices(ctx, []string{metering.OverrideScope(out.ID)}); err != nil {
		return out, err
	}
	if out.PriceOverrides == nil {
		out.PriceOverrides = []metering.Price{}
	}
	ws, err := s.wallets.WalletsOf(ctx, out.CustomerID)
	if err != nil {
		return out, err
	}
	out.Wallets = []SubWallet{}
	for _, w := range ws {
		out.Wallets = append(out.Wallets, SubWallet{Asset: w.Asset, WalletID: w.ID})
	}
	return out, nil
}

// activeSubscription is the customer's active subscription, or nil.
func (s *Service) activeSubscription(ctx context.Context, customerID string) (*Subscription, error) {
	subs, err := readSubs(ctx, s.db.Pool, `WHERE s.customer_id = $1 AND s.status = 'active'`, false, customerID)
	if err != nil || len(subs) == 0 {
		return nil, err
	}
	return subs[0], nil
}
