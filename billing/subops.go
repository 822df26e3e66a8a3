package billing

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/wallet"
)

// Refusal codes of subscriptions, recorded under the op's key.
const (
	CodeSubscriptionExists = "subscription_exists" // the customer has an active subscription
	CodeSubscriptionEnded  = "subscription_ended"  // the subscription is canceled
)

// Outbox topics of subscriptions.
const (
	TopicSubscriptionCreated  = "subscription.created"
	TopicSubscriptionRenewed  = "subscription.renewed"
	TopicSubscriptionCanceled = "subscription.canceled"
	KindSubscription          = "subscription"
)

// grantor is what an op that opens a period needs to grant its included
// credits: the customer's wallet and the system accounts of each asset.
type grantor struct {
	wallets map[string]wallet.WalletID // by asset
	sys     map[string]wallet.SystemAccounts
}

func (g grantor) declare(d *ledger.Decl) {
	for _, s := range g.sys {
		d.Account(s.IncludedFunding())
	}
}

func (g grantor) needs(b ledger.StageBatch) error {
	for _, id := range g.wallets {
		if err := wallet.Want(b, id); err != nil {
			return err
		}
	}
	return nil
}

// grant credits the period [start, end) of sub's plan version v.
func (g grantor) grant(b ledger.Batch, sub uuid.UUID, v *Plan, end time.Time) error {
	for _, ic := range v.IncludedCredits {
		id, ok := g.wallets[ic.Asset]
		if !ok {
			return fmt.Errorf("no %s wallet to grant the included credits of plan %s into", ic.Asset, v.Code)
		}
		var exp *time.Time
		if !ic.Rollover {
			e := end
			exp = &e
		}
		if _, err := wallet.GrantIncluded(b, id, g.sys[ic.Asset], wallet.IncludedGrant{Subscription: sub, Amount: ic.Amount,
			Priority: ic.Priority, ExpiresAt: exp, Description: fmt.Sprintf("Included with plan %s v%d", v.Code, v.Version)}); err != nil {
			return err
		}
	}
	return nil
}

// subscribeOp starts a subscription and its first period: the period's
// included credits are granted in the same entry.
type subscribeOp struct {
	key       string
	sub       Subscription // id, customer, plan, start, overage limit
	asked     *time.Time   // the start as asked (the fingerprint's: now differs on a retry)
	overrides []metering.Price
	g         grantor
}

func (o *subscribeOp) Key() string      { return o.key }
func (o *subscribeOp) Kind() string     { return KindSubscription }
func (o *subscribeOp) ShardKey() uint64 { return wallet.Route(o.sub.CustomerID) }
func (o *subscribeOp) Module() string   { return moduleName }
func (o *subscribeOp) Declare(d *ledger.Decl) {
	o.g.declare(d)
}

func (o *subscribeOp) Fingerprint() []byte {
	type override struct {
		Meter, Asset string
		Spec         any
	}
	var ovs []override
	for _, p := range o.overrides {
		ovs = append(ovs, override{p.MeterCode, p.Asset, p.Price})
	}
	return ledger.Fingerprint(o.Kind(), struct {
		Customer, Plan string
		Start          *time.Time
		Limit          *ledger.Amount
		Overrides      []override
	}{o.sub.CustomerID, o.sub.PlanCode, o.asked, o.sub.OverageLimit, ovs})
}

func (o *subscribeOp) needs(_ context.Context, b ledger.StageBatch) error {
	s, err := stageOf(b)
	if err != nil {
		return err
	}
	s.subs.wantCustomers[o.sub.CustomerID] = true
	s.subs.wantPlans[o.sub.PlanCode] = true
	return o.g.needs(b)
}

func (o *subscribeOp) Apply(_ context.Context, b ledger.Batch) (any, error) {
	s, err := stageOf(b)
	if err != nil {
		return nil, err
	}
	if id, ok := s.subs.active[o.sub.CustomerID]; ok {
		return nil, ledger.Reject(CodeSubscriptionExists, "customer %q already has an active subscription (%s)", o.sub.CustomerID, id)
	}
	plan, ok := s.subs.plans[o.sub.PlanCode]
	if !ok {
		return nil, fmt.Errorf("plan %q not loaded", o.sub.PlanCode)
	}
	sub := o.sub
	sub.Status, sub.CreatedAt = SubActive, b.Now()
	sub.CurrentPeriodStart, sub.CurrentPeriodEnd = sub.StartAt, plan.versions[0].Interval.add(sub.StartAt, 1)
	sub.phases = []phase{{seq: 0, plan: sub.PlanCode, start: sub.StartAt}}
	start := sub.CurrentPeriodStart
	sub.grantedPeriod = &start
	v := plan.at(sub.CurrentPeriodStart)
	sub.PlanVersion = v.Version
	b.Describe(customerOwner(sub.CustomerID), "subscription to "+sub.PlanCode, nil)
	if err := o.g.grant(b, sub.ID, v, sub.CurrentPeriodEnd); err != nil {
		return nil, err
	}
	s.subs.add(b, &sub, o.overrides)
	sub.PriceOverrides = o.overrides
	if sub.PriceOverrides == nil {
		sub.PriceOverrides = []metering.Price{}
	}
	sub.Wallets = []SubWallet{}
	for asset, id := range o.g.wallets {
		sub.Wallets = append(sub.Wallets, SubWallet{Asset: asset, WalletID: id})
	}
	sortSubWallets(sub.Wallets)
	if err := b.Emit(TopicSubscriptionCreated, customerOwner(sub.CustomerID), sub); err != nil {
		return nil, err
	}
	return sub, nil
}

// rollOp ends a subscription's current period and starts the next: on the
// same plan, on the plan a change asked for, or — canceled — none. Its key
// names the period it ends, so a period rolls once, whether the scheduler
// rolls it at its end or a change of plan or a cancellation cuts it short.
type rollOp struct {
	subID    uuid.UUID
	customer string
	from     time.Time // the current period's start
	at       time.Time // the next period's start: the current one's end, or now when cut short
	plan     string    // the next period's plan; "" for the one the subscription asked for
	cancel   bool
	g        grantor
	// resume are the customer's wallets, when the roll may end the
	// subscription: their own cycles bill them again from the end on.
	resume []wallet.Wallet
}

func rollKey(sub uuid.UUID, from time.Time) string {
	return "roll-period:" + sub.String() + ":" + from.UTC().Format(time.RFC3339Nano)
}

func (o *rollOp) Key() string      { return rollKey(o.subID, o.from) }
func (o *rollOp) Kind() string     { return KindSubscription }
func (o *rollOp) ShardKey() uint64 { return wallet.Route(o.customer) }
func (o *rollOp) Module() string   { return moduleName }
func (o *rollOp) Declare(d *ledger.Decl) {
	o.g.declare(d)
}

func (o *rollOp) Fingerprint() []byte {
	return ledger.Fingerprint(o.Kind(), struct {
		Sub      uuid.UUID
		From, At time.Time
		Plan     string
		Cancel   bool
	}{o.subID, o.from, o.at, o.plan, o.cancel})
}

func (o *rollOp) needs(_ context.Context, b ledger.StageBatch) error {
	s, err := stageOf(b)
	if err != nil {
		return err
	}
	s.subs.wantIDs[o.subID] = true
	if o.plan != "" {
		s.subs.wantPlans[o.plan] = true
	}
	for _, w := range o.resume {
		if err := wallet.Want(b, w.ID); err != nil {
			return err
		}
	}
	return o.g.needs(b)
}

func (o *rollOp) Apply(_ context.Context, b ledger.Batch) (any, error) {
	s, err := stageOf(b)
	if err != nil {
		return nil, err
	}
	sub := s.subs.subs[o.subID]
	if sub == nil {
		return nil, fmt.Errorf("subscription %s not loaded", o.subID)
	}
	if sub.Status != SubActive {
		return nil, ledger.Reject(CodeSubscriptionEnded, "subscription %s is %s", sub.ID, sub.Status)
	}
	if !sub.CurrentPeriodStart.Equal(o.from) {
		// Another roll of this period cannot exist (the key), so the
		// subscription is in a later period: nothing to do.
		return nil, ledger.Reject(CodeSubscriptionEnded, "subscription %s is past the period from %s", sub.ID, o.from.Format(time.RFC3339))
	}
	s.subs.change(b, sub)
	owner := customerOwner(sub.CustomerID)
	cur := &sub.phases[len(sub.phases)-1]
	if o.cancel || sub.CancelAtPeriodEnd && o.plan == "" {
		at := o.at
		cur.end, sub.Status, sub.EndedAt, sub.CurrentPeriodEnd = &at, SubCanceled, &at, at
		if sub.CanceledAt == nil {
			now := b.Now()
			sub.CanceledAt = &now
		}
		// The wallets go back to their own cycles, from the first end
		// after the subscription's: the periods it billed are not
		// billed again, nor closed empty one by one.
		for _, w := range o.resume {
			_, next := wallet.Cycle(w.CreatedAt, at)
			if err := wallet.ScheduleClose(b, w.ID, next); err != nil {
				return nil, err
			}
		}
		b.Describe(owner, "subscription ended", nil)
		if err := b.Emit(TopicSubscriptionCanceled, owner, sub); err != nil {
			return nil, err
		}
		return *sub, nil
	}
	next := cur.plan
	switch {
	case o.plan != "":
		next = o.plan
	case sub.NextPlanCode != nil:
		next = *sub.NextPlanCode
	}
	plan, ok := s.subs.plans[next]
	if !ok {
		return nil, fmt.Errorf("plan %q not loaded", next)
	}
	iv := plan.versions[0].Interval
	if next != cur.plan || !o.at.Equal(sub.CurrentPeriodEnd) {
		// A new phase: its periods run from now on.
		at := o.at
		cur.end = &at
		sub.phases = append(sub.phases, phase{seq: cur.seq + 1, plan: next, start: o.at})
	}
	sub.PlanCode, sub.NextPlanCode = next, nil
	sub.CurrentPeriodStart, sub.CurrentPeriodEnd = o.at, iv.add(o.at, 1)
	if cur := sub.phases[len(sub.phases)-1]; !cur.start.Equal(o.at) {
		sub.CurrentPeriodStart, sub.CurrentPeriodEnd = iv.period(cur.start, o.at)
	}
	start := sub.CurrentPeriodStart
	sub.grantedPeriod = &start
	v := plan.at(start)
	sub.PlanVersion = v.Version
	b.Describe(owner, "subscription period from "+start.Format(time.DateOnly), nil)
	if err := o.g.grant(b, sub.ID, v, sub.CurrentPeriodEnd); err != nil {
		return nil, err
	}
	if err := b.Emit(TopicSubscriptionRenewed, owner, sub); err != nil {
		return nil, err
	}
	return *sub, nil
}

var (
	_ op = (*subscribeOp)(nil)
	_ op = (*rollOp)(nil)
)

func sortSubWallets(ws []SubWallet) {
	slices.SortFunc(ws, func(a, b SubWallet) int { return strings.Compare(a.Asset, b.Asset) })
}
