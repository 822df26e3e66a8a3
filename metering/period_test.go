package metering

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/wallet"
)

// The default range of a usage report: the active subscription's period,
// else the oldest wallet's cycle, else the calendar month.
func TestPeriod(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	now := time.Now().UTC()

	bare, err := w.wallets.CreateCustomer(ctx, wallet.Customer{ID: unique("cus-")})
	if err != nil {
		t.Fatal(err)
	}
	start, end, err := w.svc.Period(ctx, bare.ID, now)
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	if err != nil || !start.Equal(month) || !end.Equal(month.AddDate(0, 1, 0)) {
		t.Errorf("no wallet: [%s, %s) %v; want the calendar month", start, end, err)
	}

	cus, wl := w.customer(t, "")
	cs, ce := wallet.Cycle(wl.CreatedAt, now)
	if start, end, err := w.svc.Period(ctx, cus, now); err != nil || !start.Equal(cs) || !end.Equal(ce) {
		t.Errorf("a wallet: [%s, %s) %v; want its cycle [%s, %s)", start, end, err, cs, ce)
	}

	// A subscription, written as billing writes it: its period wins.
	plan := unique("plan-")
	ps, pe := now.Add(-72*time.Hour).Truncate(time.Second), now.Add(72*time.Hour).Truncate(time.Second)
	if _, err := w.db.Pool.Exec(ctx, `INSERT INTO plans (code, currency, billing_interval, created_at) VALUES ($1, 'USD', 'week', now())`, plan); err != nil {
		t.Fatal(err)
	}
	// A canceled one before it, with another period, does not count.
	if _, err := w.db.Pool.Exec(ctx, `INSERT INTO subscriptions (id, customer_id, plan_code, status, start_at, current_period_start, current_period_end, created_at)
		VALUES ($1, $2, $3, 'canceled', $4, $4, $5, now()), ($6, $2, $3, 'active', $5, $5, $7, now())`,
		uuid.New(), cus, plan, ps.Add(-7*24*time.Hour), ps, uuid.New(), pe); err != nil {
		t.Fatal(err)
	}
	if start, end, err := w.svc.Period(ctx, cus, now); err != nil || !start.Equal(ps) || !end.Equal(pe) {
		t.Errorf("subscribed: [%s, %s) %v; want the subscription's [%s, %s)", start, end, err, ps, pe)
	}
}
