package billing

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
)

// subBook is the subscriptions' part of a billing stage: the subscriptions
// the batch's ops work on, read FOR UPDATE, the customers' active ones (so
// a second is refused even within one batch), the plans they are on, and
// what the ops change, written in Flush.
type subBook struct {
	wantIDs       map[uuid.UUID]bool
	wantCustomers map[string]bool
	wantPlans     map[string]bool

	subs   map[uuid.UUID]*Subscription
	active map[string]uuid.UUID // customer → active subscription
	plans  map[string]planRecord

	fresh     []*Subscription
	overrides []metering.Price
	dirty     map[uuid.UUID]bool
}

func (sb *subBook) reset() {
	*sb = subBook{wantIDs: map[uuid.UUID]bool{}, wantCustomers: map[string]bool{}, wantPlans: map[string]bool{},
		subs: map[uuid.UUID]*Subscription{}, active: map[string]uuid.UUID{}, plans: map[string]planRecord{},
		dirty: map[uuid.UUID]bool{}}
}

// load reads what the ops asked for, in b's transaction.
func (sb *subBook) load(ctx context.Context, b ledger.StageBatch) error {
	if len(sb.wantIDs) == 0 && len(sb.wantCustomers) == 0 {
		return nil
	}
	tx := b.Tx()
	// In id order, FOR UPDATE: two batches lock a customer's rows in the
	// same order.
	subs, err := readSubs(ctx, tx, `WHERE s.id = ANY($1) OR (s.customer_id = ANY($2) AND s.status = 'active')`, true,
		slices.Collect(maps.Keys(sb.wantIDs)), slices.Collect(maps.Keys(sb.wantCustomers)))
	if err != nil {
		return err
	}
	for _, s := range subs {
		sb.subs[s.ID] = s
		if s.Status == SubActive {
			sb.active[s.CustomerID] = s.ID
		}
		for _, p := range s.phases {
			sb.wantPlans[p.plan] = true
		}
		if s.NextPlanCode != nil {
			sb.wantPlans[*s.NextPlanCode] = true
		}
	}
	if len(sb.wantPlans) > 0 {
		plans, err := readPlans(ctx, tx, slices.Collect(maps.Keys(sb.wantPlans)))
		if err != nil {
			return err
		}
		for _, p := range plans {
			sb.plans[p.code] = p
		}
	}
	return nil
}

// change registers an undo that puts sub back as it was before the op
// changes it, and marks it to be written.
func (sb *subBook) change(b ledger.Batch, sub *Subscription) {
	saved := *sub
	saved.phases = slices.Clone(sub.phases)
	wasDirty := sb.dirty[sub.ID]
	sb.dirty[sub.ID] = true
	b.OnUndo(func() {
		*sub = saved
		if !wasDirty {
			delete(sb.dirty, sub.ID)
		}
	})
}

// add records a new subscription and its overrides.
func (sb *subBook) add(b ledger.Batch, sub *Subscription, overrides []metering.Price) {
	sb.subs[sub.ID], sb.active[sub.CustomerID] = sub, sub.ID
	sb.fresh = append(sb.fresh, sub)
	sb.overrides = append(sb.overrides, overrides...)
	b.OnUndo(func() {
		delete(sb.subs, sub.ID)
		delete(sb.active, sub.CustomerID)
		sb.fresh = sb.fresh[:len(sb.fresh)-1]
		sb.overrides = sb.overrides[:len(sb.overrides)-len(overrides)]
	})
}

// flush writes new subscriptions with their phases and overrides, and the
// changed ones. Subscriptions change a few times a month each, so the
// changed rows are written one statement each.
func (sb *subBook) flush(ctx context.Context, b ledger.StageBatch) error {
	tx := b.Tx()
	for _, s := range sb.fresh {
		if _, err := tx.Exec(ctx, `INSERT INTO subscriptions (id, customer_id, plan_code, status, start_at, current_period_start,
				current_period_end, cancel_at_period_end, overage_limit, granted_period_start, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			s.ID, s.CustomerID, s.PlanCode, s.Status, s.StartAt, s.CurrentPeriodStart, s.CurrentPeriodEnd, s.CancelAtPeriodEnd,
			s.OverageLimit, s.grantedPeriod, s.CreatedAt); err != nil {
			return fmt.Errorf("insert subscription: %w", err)
		}
	}
	if err := metering.WritePrices(ctx, tx, sb.overrides); err != nil {
		return err
	}
	for _, s := range sb.fresh {
		if err := writePhases(ctx, b, s); err != nil {
			return err
		}
	}
	for id := range sb.dirty {
		s := sb.subs[id]
		if slices.Contains(sb.fresh, s) {
			continue
		}
		if _, err := tx.Exec(ctx, `UPDATE subscriptions SET plan_code = $2, status = $3, current_period_start = $4,
				current_period_end = $5, cancel_at_period_end = $6, next_plan_code = $7, granted_period_start = $8,
				canceled_at = $9, ended_at = $10 WHERE id = $1`,
			s.ID, s.PlanCode, s.Status, s.CurrentPeriodStart, s.CurrentPeriodEnd, s.CancelAtPeriodEnd, s.NextPlanCode,
			s.grantedPeriod, s.CanceledAt, s.EndedAt); err != nil {
			return fmt.Errorf("update subscription: %w", err)
		}
		if err := writePhases(ctx, b, s); err != nil {
			return err
		}
	}
	return nil
}

// writePhases upserts a subscription's phases (a phase's end is set when
// the next begins or the subscription ends).
func writePhases(ctx context.Context, b ledger.StageBatch, s *Subscription) error {
	n := len(s.phases)
	subs, seqs, plans, starts, ends := make([]uuid.UUID, n), make([]int32, n), make([]string, n), make([]time.Time, n), make([]*time.Time, n)
	for i, p := range s.phases {
		subs[i], seqs[i], plans[i], starts[i], ends[i] = s.ID, int32(p.seq), p.plan, p.start, p.end
	}
	if _, err := b.Tx().Exec(ctx, `INSERT INTO subscription_phases (subscription_id, seq, plan_code, start_at, end_at)
		SELECT * FROM unnest($1::UUID[], $2::INT[], $3::TEXT[], $4::TIMESTAMPTZ[], $5::TIMESTAMPTZ[])
		ON CONFLICT (subscription_id, seq) DO UPDATE SET end_at = excluded.end_at`, subs, seqs, plans, starts, ends); err != nil {
		return fmt.Errorf("write phases: %w", err)
	}
	return nil
}
