package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/wallet"
)

// NewSubscription is what Subscribe needs.
type NewSubscription struct {
	CustomerID     string
	PlanCode       string
	StartAt        *time.Time // default now; at most one period in the past
	PriceOverrides []metering.NewPrice
	OverageLimit   *ledger.Amount
}

// Subscribe puts a customer on a plan: it opens the customer's wallets in
// every asset the plan prices or includes (if missing), starts the first
// period and grants its included credits, in one ledger entry. key is the
// client's idempotency key ("" for none).
func (s *Service) Subscribe(ctx context.Context, key string, ns NewSubscription) (ledger.Result[Subscription], error) {
	var none ledger.Result[Subscription]
	if ns.CustomerID == "" {
		return none, fault.Invalidf("customer_id", "required")
	}
	if _, err := s.wallets.Customer(ctx, ns.CustomerID); errors.Is(err, fault.NotFound) {
		return none, fault.Invalidf("customer_id", "no customer %q", ns.CustomerID)
	} else if err != nil {
		return none, err
	}
	if ns.PlanCode == "" {
		return none, fault.Invalidf("plan_code", "required")
	}
	plan, err := s.Plan(ctx, ns.PlanCode, 0)
	if errors.Is(err, fault.NotFound) {
		return none, fault.Invalidf("plan_code", "no plan %q", ns.PlanCode)
	}
	if err != nil {
		return none, err
	}
	if plan.ArchivedAt != nil {
		return none, fault.Invalidf("plan_code", "plan %q is archived: no new subscriptions", ns.PlanCode)
	}
	if ns.OverageLimit != nil && ns.OverageLimit.IsNegative() {
		return none, fault.Invalidf("overage_limit", "must not be negative")
	}
	now := s.l.Now()
	start := now
	if ns.StartAt != nil {
		start = ns.StartAt.UTC()
		switch {
		case start.After(now):
			return none, fault.Invalidf("start_at", "must not be in the future")
		case !plan.Interval.add(start, 1).After(now):
			return none, fault.Invalidf("start_at", "at most one %s in the past: the first period must hold now", plan.Interval)
		}
	}
	// Without a key, a second subscription is refused before anything is
	// made; with one, the op refuses it under the key (a retry of the
	// first must replay its answer, not meet this check).
	if active, err := s.activeSubscription(ctx, ns.CustomerID); err != nil {
		return none, err
	} else if active != nil && key == "" {
		return none, fault.Conflictf(CodeSubscriptionExists, "customer %q already has an active subscription (%s)", ns.CustomerID, active.ID)
	}
	id := uuid.New()
	overrides, err := s.prepareOverrides(ctx, id, plan, ns.PriceOverrides)
	if err != nil {
		return none, err
	}
	g, err := s.grantor(ctx, ns.CustomerID, plan, ns.OverageLimit)
	if err != nil {
		return none, err
	}
	if key == "" {
		key = "subscribe:" + id.String()
	}
	op := &subscribeOp{key: key, sub: Subscription{ID: id, CustomerID: ns.CustomerID, PlanCode: plan.Code, StartAt: start,
		OverageLimit: ns.OverageLimit}, asked: ns.StartAt, overrides: overrides, g: g}
	return ledger.Answer[Subscription](s.l.Submit(ctx, op))
}

// prepareOverrides validates a subscription's price overrides: each for a
// meter the plan prices, in an asset the plan prices it in.
func (s *Service) prepareOverrides(ctx context.Context, sub uuid.UUID, plan Plan, nps []metering.NewPrice) ([]metering.Price, error) {
	priced := map[[2]string]bool{}
	for _, p := range plan.Prices {
		priced[[2]string{p.MeterCode, p.Asset}] = true
	}
	var out []metering.Price
	series := map[string]bool{}
	for i, np := range nps {
		field := fmt.Sprintf("price_overrides[%d]", i)
		if np.EffectiveAt != nil {
			return nil, fault.Invalidf(field+".effective_at", "an override is in force for the whole subscription")
		}
		p, err := s.meters.PreparePrice(ctx, np)
		if err != nil {
			return nil, prefixField(field, err)
		}
		if !priced[[2]string{p.MeterCode, p.Asset}] {
			return nil, fault.Invalidf(field+".meter_code", "plan %q does not price meter %q in %s: an override replaces a plan's price",
				plan.Code, p.MeterCode, p.Asset)
		}
		k := p.MeterCode + "|" + p.Asset + "|" + p.Price.DimensionKey()
		if series[k] {
			return nil, fault.Invalidf(field, "a second override of meter %q in %s for the same dimensions", p.MeterCode, p.Asset)
		}
		series[k] = true
		p.Scope, p.EffectiveAt = metering.OverrideScope(sub), metering.Beginning
		out = append(out, p)
	}
	return out, nil
}

// grantor opens the customer's wallets in every asset plan prices or
// includes (with the plan's overage policy and the subscription's overage
// limit; existing wallets keep theirs, PATCH /v1/wallets changes them)
// and resolves their system accounts.
func (s *Service) grantor(ctx context.Context, customer string, plan Plan, limit *ledger.Amount) (grantor, error) {
	g := grantor{wallets: map[string]wallet.WalletID{}, sys: map[string]wallet.SystemAccounts{}}
	assets := map[string]bool{}
	for _, ic := range plan.IncludedCredits {
		assets[ic.Asset] = true
	}
	for _, p := range plan.Prices {
		assets[p.Asset] = true
	}
	ws, err := s.wallets.WalletsOf(ctx, customer)
	if err != nil {
		return g, err
	}
	have := map[string]wallet.WalletID{}
	for _, w := range ws {
		have[w.Asset] = w.ID
	}
	for asset := range assets {
		id, ok := have[asset]
		if !ok {
			nw := wallet.NewWallet{CustomerID: customer, Asset: asset, OveragePolicy: wallet.Policy(plan.OveragePolicy)}
			if nw.OveragePolicy == wallet.PolicyAllow {
				nw.OverageLimit = limit
			}
			w, err := s.wallets.CreateWallet(ctx, nw)
			if errors.Is(err, fault.Exists) {
				// Made meanwhile by another request: use it.
				if ws, err = s.wallets.WalletsOf(ctx, customer); err != nil {
					return g, err
				}
				for _, w := range ws {
					if w.Asset == asset {
						id, ok = w.ID, true
					}
				}
				if !ok {
					return g, fmt.Errorf("wallet %s of %s exists but cannot be found", asset, customer)
				}
			} else if err != nil {
				return g, err
			} else {
				id = w.ID
			}
		}
		sys, err := s.wallets.System(ctx, asset)
		if err != nil {
			return g, err
		}
		g.wallets[asset], g.sys[asset] = id, sys
	}
	return g, nil
}

// closePeriodOp builds the close of sub's period [start, end), cut at cut.
func (s *Service) closePeriodOp(ctx context.Context, sub *Subscription, start, end, cut time.Time) (*closePeriodOp, error) {
	ph := sub.phaseAt(start)
	if ph == nil {
		ph = sub.current()
	}
	plan, err := s.Plan(ctx, ph.plan, 0)
	if err != nil {
		return nil, err
	}
	ws, err := s.wallets.WalletsOf(ctx, sub.CustomerID)
	if err != nil {
		return nil, err
	}
	o := &closePeriodOp{subID: sub.ID, customer: sub.CustomerID, currency: plan.Currency, start: start, end: end, cut: cut,
		sys: map[string]wallet.SystemAccounts{}, conv: map[string]*moneyClose{}}
	if o.money, err = s.moneyAccounts(ctx, plan.Currency); err != nil {
		return nil, err
	}
	if o.rounding, err = s.openCustomerRounding(ctx, sub.CustomerID, plan.Currency); err != nil {
		return nil, err
	}
	for _, w := range ws {
		var mc *moneyClose
		if w.Asset != plan.Currency {
			conv, err := s.ConversionAt(ctx, w.Asset, start)
			if err != nil {
				return nil, err
			}
			if conv == nil || conv.Currency != plan.Currency {
				// A wallet the plan's currency cannot bill (credits not
				// priced then, or sold in another currency) is left
				// out; what it owes waits for a period that can.
				continue
			}
			acc, err := s.EnsureMoneyAccounts(ctx, sub.CustomerID, *conv)
			if err != nil {
				return nil, err
			}
			mc = &moneyClose{conv: *conv, acc: acc}
		}
		if err := s.wallets.EnsureAccounts(ctx, w); err != nil {
			return nil, err
		}
		sys, err := s.wallets.System(ctx, w.Asset)
		if err != nil {
			return nil, err
		}
		o.wallets, o.sys[w.Asset] = append(o.wallets, w), sys
		if mc != nil {
			o.conv[w.Asset] = mc
		}
	}
	return o, nil
}

// ClosePeriod closes the subscription's current period now and issues its
// invoice; the period itself runs on to its end, and what happens after is
// billed with the next period. Asking again in the same period answers the
// same invoice.
func (s *Service) ClosePeriod(ctx context.Context, id uuid.UUID) (ledger.Result[Invoice], error) {
	sub, err := s.Subscription(ctx, id)
	if err != nil {
		return ledger.Result[Invoice]{}, err
	}
	if sub.Status != SubActive {
		return ledger.Result[Invoice]{}, fault.Conflictf(CodeSubscriptionEnded, "subscription %s is %s", id, sub.Status)
	}
	o, err := s.closePeriodOp(ctx, &sub, sub.CurrentPeriodStart, sub.CurrentPeriodEnd, sub.CurrentPeriodEnd)
	if err != nil {
		return ledger.Result[Invoice]{}, err
	}
	return ledger.Answer[Invoice](s.l.Submit(ctx, o))
}

// Change-plan and cancel moments.
const (
	AtNow       = "now"
	AtPeriodEnd = "period_end"
)

// ChangePlan moves the subscription to another plan: at the period's end
// (the next period is on the new plan), or now — the current period is
// invoiced now with its fee and commitment prorated, and a new period on
// the new plan starts now with its included credits.
func (s *Service) ChangePlan(ctx context.Context, id uuid.UUID, planCode, at string) (Subscription, error) {
	sub, err := s.Subscription(ctx, id)
	if err != nil {
		return Subscription{}, err
	}
	if sub.Status != SubActive {
		return Subscription{}, fault.Conflictf(CodeSubscriptionEnded, "subscription %s is %s", id, sub.Status)
	}
	cur, err := s.Plan(ctx, sub.current().plan, 0)
	if err != nil {
		return Subscription{}, err
	}
	plan, err := s.Plan(ctx, planCode, 0)
	if errors.Is(err, fault.NotFound) {
		return Subscription{}, fault.Invalidf("plan_code", "no plan %q", planCode)
	}
	if err != nil {
		return Subscription{}, err
	}
	switch {
	case plan.ArchivedAt != nil:
		return Subscription{}, fault.Invalidf("plan_code", "plan %q is archived", planCode)
	case plan.Currency != cur.Currency:
		return Subscription{}, fault.Invalidf("plan_code", "plan %q bills in %s, the subscription in %s", planCode, plan.Currency, cur.Currency)
	}
	// To the plan it is on: nothing to cut now (so a retried change does
	// not cut the new period short), and no change pending at the end.
	same := planCode == cur.Code
	if same && at == AtNow {
		return sub, nil
	}
	switch at {
	case AtPeriodEnd, "":
		var next *string
		if !same {
			next = &planCode
		}
		if _, err := s.db.Pool.Exec(ctx, `UPDATE subscriptions SET next_plan_code = $2 WHERE id = $1 AND status = 'active'`, id, next); err != nil {
			return Subscription{}, fmt.Errorf("change plan: %w", err)
		}
		return s.Subscription(ctx, id)
	case AtNow:
		return s.cutShort(ctx, &sub, plan, false)
	}
	return Subscription{}, fault.Invalidf("at", "now or period_end")
}

// Cancel ends the subscription: at the period's end (the default; the
// last period is invoiced then), or now — the current period is invoiced
// now with its fee and commitment prorated.
func (s *Service) Cancel(ctx context.Context, id uuid.UUID, atPeriodEnd bool) (Subscription, error) {
	sub, err := s.Subscription(ctx, id)
	if err != nil {
		return Subscription{}, err
	}
	if sub.Status != SubActive {
		return Subscription{}, fault.Conflictf(CodeSubscriptionEnded, "subscription %s is %s", id, sub.Status)
	}
	if atPeriodEnd {
		if _, err := s.db.Pool.Exec(ctx, `UPDATE subscriptions SET cancel_at_period_end = true, canceled_at = COALESCE(canceled_at, $2)
			WHERE id = $1 AND status = 'active'`, id, s.l.Now()); err != nil {
			return Subscription{}, fmt.Errorf("cancel: %w", err)
		}
		return s.Subscription(ctx, id)
	}
	return s.cutShort(ctx, &sub, Plan{}, true)
}

// cutShort closes the current period now and rolls it: into a period on
// plan, or into nothing when cancel.
func (s *Service) cutShort(ctx context.Context, sub *Subscription, plan Plan, cancel bool) (Subscription, error) {
	now := s.l.Now()
	closeOp, err := s.closePeriodOp(ctx, sub, sub.CurrentPeriodStart, sub.CurrentPeriodEnd, now)
	if err != nil {
		return Subscription{}, err
	}
	if _, err := ledger.Answer[Invoice](s.l.Submit(ctx, closeOp)); err != nil {
		return Subscription{}, err
	}
	roll := &rollOp{subID: sub.ID, customer: sub.CustomerID, from: sub.CurrentPeriodStart, at: now, cancel: cancel}
	if cancel {
		if roll.resume, err = s.wallets.WalletsOf(ctx, sub.CustomerID); err != nil {
			return Subscription{}, err
		}
	} else {
		roll.plan = plan.Code
		if roll.g, err = s.grantor(ctx, sub.CustomerID, plan, sub.OverageLimit); err != nil {
			return Subscription{}, err
		}
	}
	if _, err := ledger.Answer[Subscription](s.l.Submit(ctx, roll)); err != nil {
		return Subscription{}, err
	}
	return s.Subscription(ctx, sub.ID)
}

// CloseDuePeriods closes and rolls the subscription periods whose end has
// passed (the scheduler). Several schedulers may run: the periods' keys
// make each close and each roll happen once. A server down for several
// periods catches up one period per pass. One subscription that cannot be
// closed now (its error is logged and it is tried again next pass) holds
// back no other: each roll waits only for its own close.
func (s *Service) CloseDuePeriods(ctx context.Context) (int, error) {
	now := s.l.Now()
	rows, err := s.db.Pool.Query(ctx, `SELECT id FROM subscriptions WHERE status = 'active' AND current_period_end <= $1
		ORDER BY current_period_end LIMIT 500`, now)
	if err != nil {
		return 0, fmt.Errorf("find due periods: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	due, err := readSubs(ctx, s.db.Pool, `WHERE s.id = ANY($1)`, false, ids)
	if err != nil {
		return 0, err
	}
	// Every close is enqueued before any is waited for, so they share
	// batches.
	closes := make([]*ledger.Pending, len(due))
	for i, sub := range due {
		o, err := s.closePeriodOp(ctx, sub, sub.CurrentPeriodStart, sub.CurrentPeriodEnd, sub.CurrentPeriodEnd)
		if err == nil {
			closes[i], err = s.l.Enqueue(ctx, o)
		}
		if err != nil {
			s.log.Warn("subscription period close", "subscription", sub.ID, "err", err)
		}
	}
	n := 0
	var rolls []*ledger.Pending
	for i, sub := range due {
		if closes[i] == nil {
			continue
		}
		out, err := closes[i].Wait(ctx)
		if err != nil {
			s.log.Warn("subscription period close", "subscription", sub.ID, "err", err)
			continue
		}
		if out.Status == ledger.StatusPosted && !out.Replayed {
			n++
		}
		roll, err := s.rollAtEnd(ctx, sub)
		if err == nil {
			var p *ledger.Pending
			if p, err = s.l.Enqueue(ctx, roll); err == nil {
				rolls = append(rolls, p)
			}
		}
		if err != nil {
			s.log.Warn("subscription period roll", "subscription", sub.ID, "err", err)
		}
	}
	for _, p := range rolls {
		if _, err := p.Wait(ctx); err != nil {
			s.log.Warn("subscription period roll", "err", err)
		}
	}
	return n, nil
}

// rollAtEnd is the roll of sub's current period at its end: into the
// next on its plan (or the one a change asked for), or its end.
func (s *Service) rollAtEnd(ctx context.Context, sub *Subscription) (*rollOp, error) {
	roll := &rollOp{subID: sub.ID, customer: sub.CustomerID, from: sub.CurrentPeriodStart, at: sub.CurrentPeriodEnd}
	if sub.CancelAtPeriodEnd {
		ws, err := s.wallets.WalletsOf(ctx, sub.CustomerID)
		roll.resume = ws
		return roll, err
	}
	next := sub.current().plan
	if sub.NextPlanCode != nil {
		next = *sub.NextPlanCode
	}
	plan, err := s.Plan(ctx, next, 0)
	if err != nil {
		return nil, err
	}
	roll.g, err = s.grantor(ctx, sub.CustomerID, plan, sub.OverageLimit)
	return roll, err
}
