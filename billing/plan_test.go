package billing

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/pricing"
	"github.com/creditledger/creditledger/wallet"
)

// newPrice is a price for meter m in asset from a JSON spec.
func newPrice(t *testing.T, m metering.Meter, asset, spec string) metering.NewPrice {
	t.Helper()
	var p pricing.Price
	if err := json.Unmarshal([]byte(spec), &p); err != nil {
		t.Fatalf("price %s: %v", spec, err)
	}
	return metering.NewPrice{MeterCode: m.Code, Asset: asset, Price: p}
}

func amountPtr(s string) *ledger.Amount {
	a := ledger.MustAmount(s)
	return &a
}

// plan makes a plan with a fresh code.
func (w *world) plan(t *testing.T, np NewPlan) Plan {
	t.Helper()
	np.Code = unique("plan-")
	p, _, err := w.bills.CreatePlan(context.Background(), "", np)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// customer makes a customer with no wallet.
func (w *world) customer(t *testing.T) string {
	t.Helper()
	c, err := w.wallets.CreateCustomer(context.Background(), wallet.Customer{ID: unique("cus-")})
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func (w *world) subscribe(t *testing.T, customer, plan string, overrides ...metering.NewPrice) Subscription {
	t.Helper()
	sub, _, err := ledger.Unpack(w.bills.Subscribe(context.Background(), "", NewSubscription{CustomerID: customer, PlanCode: plan,
		PriceOverrides: overrides}))
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// charged is what event id charged, in total, per asset.
func (w *world) charged(t *testing.T, id string) map[string]string {
	t.Helper()
	rows, err := w.db.Pool.Query(context.Background(), `SELECT asset, SUM(amount)::TEXT FROM usage_lines WHERE event_id = $1 GROUP BY asset`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var a, amt string
		if err := rows.Scan(&a, &amt); err != nil {
			t.Fatal(err)
		}
		if a != "" {
			out[a] = ledger.MustAmount(amt).String()
		}
	}
	return out
}

// TestPlansPriceTheirCustomers: the same events, charged by each
// customer's own book — two plans, an override, the default book — and by
// the version or price in force at each event's timestamp.
func TestPlansPriceTheirCustomers(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	tokens := w.meter(t, metering.Meter{Code: "tok", Aggregation: metering.Sum, Property: "n", GroupBy: []string{"model"}})
	unit := func(p string) string { return `{"model":"per_unit","unit_price":"` + p + `"}` }
	cr := w.pricedAsset(t, "0.01")
	w.price(t, tokens, cr, unit("2")) // the default book
	basic := w.plan(t, NewPlan{Currency: "USD", Prices: []metering.NewPrice{newPrice(t, tokens, cr, unit("1"))}})
	pro := w.plan(t, NewPlan{Currency: "USD", Prices: []metering.NewPrice{newPrice(t, tokens, cr, unit("0.5"))}})
	a, b, c, d := w.customer(t), w.customer(t), w.customer(t), w.customer(t)
	w.subscribe(t, a, basic.Code)
	w.subscribe(t, b, pro.Code)
	w.subscribe(t, c, basic.Code, newPrice(t, tokens, cr, `{"model":"per_unit","unit_price":"0.25","dimensions":{"model":"big"}}`))
	if _, err := w.wallets.CreateWallet(ctx, wallet.NewWallet{CustomerID: d, Asset: cr, OveragePolicy: wallet.PolicyAllow}); err != nil {
		t.Fatal(err)
	}
	now := w.clock.Now()
	send := func(customer string, n int, model string, at time.Time) string {
		id := unique("ev-")
		e := usageEvent(id, customer, tokens.EventName, map[string]any{"n": n, "model": model})
		e["timestamp"] = at.Format(time.RFC3339Nano)
		w.ingest(t, e)
		return id
	}
	check := func(name, id, want string) {
		t.Helper()
		if got := w.charged(t, id)[cr]; got != want {
			t.Errorf("%s: charged %s, want %s", name, got, want)
		}
	}
	check("basic", send(a, 10, "small", now), "10")
	check("pro", send(b, 10, "small", now), "5")
	check("override", send(c, 10, "big", now), "2.5")
	check("override does not cover other dimensions", send(c, 10, "small", now), "10")
	check("default book", send(d, 10, "small", now), "20")

	// A new version of basic from an hour ahead, and a new default price
	// from then too.
	later := now.Add(time.Hour)
	if _, _, err := w.bills.AddVersion(ctx, basic.Code, "", NewPlan{EffectiveAt: &later,
		Prices: []metering.NewPrice{newPrice(t, tokens, cr, unit("3"))}}); err != nil {
		t.Fatal(err)
	}
	np := newPrice(t, tokens, cr, unit("4"))
	np.EffectiveAt = &later
	if _, _, err := w.meters.CreatePrice(ctx, "", np); err != nil {
		t.Fatal(err)
	}
	if v2, err := w.bills.Plan(ctx, basic.Code, 2); err != nil || len(v2.Prices) != 1 || !v2.BaseFee.IsZero() {
		t.Fatalf("version 2: %+v %v", v2, err)
	}
	// A version that only changes the fee keeps the prices it does not
	// mention; an empty list would have said none.
	fee := later.Add(time.Minute)
	v3, _, err := w.bills.AddVersion(ctx, basic.Code, "", NewPlan{EffectiveAt: &fee, BaseFee: amountPtr("9")})
	if err != nil || len(v3.Prices) != 1 || v3.Prices[0].Price.UnitPrice.String() != "3" || !v3.BaseFee.Equal(ledger.MustAmount("9")) {
		t.Fatalf("version 3: %+v %v, want version 2's prices and a fee of 9", v3, err)
	}
	w.clock.Advance(2 * time.Hour)
	check("basic before its new version", send(a, 10, "small", later.Add(-time.Second)), "10")
	check("basic from its new version", send(a, 10, "small", later), "30")
	check("the override stands over the new version", send(c, 10, "big", later), "2.5")
	check("pro is unchanged", send(b, 10, "small", later), "5")
	check("default book before its change", send(d, 10, "small", later.Add(-time.Second)), "20")
	check("default book from its change", send(d, 10, "small", later), "40")

	// The first events were never re-rated.
	var total string
	if err := w.db.Pool.QueryRow(ctx, `SELECT SUM(amount)::TEXT FROM usage_lines WHERE customer_id = $1`, a).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if !ledger.MustAmount(total).Equal(ledger.MustAmount("50")) {
		t.Errorf("customer a charged %s in all, want 10 + 10 + 30", total)
	}
}

func TestPlanAndSubscriptionRefusals(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	tokens := w.meter(t, metering.Meter{Code: "tok", Aggregation: metering.Sum, Property: "n"})
	other := w.meter(t, metering.Meter{Code: "other", Aggregation: metering.Count})
	unit := `{"model":"per_unit","unit_price":"1"}`
	p := w.plan(t, NewPlan{Currency: "USD", Prices: []metering.NewPrice{newPrice(t, tokens, "USD", unit)}})
	past := w.clock.Now().Add(-time.Hour)
	for _, tc := range []struct {
		name  string
		err   error
		field string
	}{
		{"negative fee", func() error {
			_, _, err := w.bills.CreatePlan(ctx, "", NewPlan{Code: unique("p-"), Currency: "USD", BaseFee: amountPtr("-1")})
			return err
		}(), "base_fee"},
		{"bad currency", func() error {
			_, _, err := w.bills.CreatePlan(ctx, "", NewPlan{Code: unique("p-"), Currency: "usd"})
			return err
		}(), "currency"},
		{"a price of another currency", func() error {
			_, _, err := w.bills.CreatePlan(ctx, "", NewPlan{Code: unique("p-"), Currency: "EUR", Prices: []metering.NewPrice{newPrice(t, tokens, "USD", unit)}})
			return err
		}(), "prices[0].asset"},
		{"a version in the past", func() error {
			_, _, err := w.bills.AddVersion(ctx, p.Code, "", NewPlan{EffectiveAt: &past})
			return err
		}(), "effective_at"},
		{"a version changing the currency", func() error {
			_, _, err := w.bills.AddVersion(ctx, p.Code, "", NewPlan{Currency: "EUR"})
			return err
		}(), "currency"},
		{"an unknown plan", func() error {
			_, err := w.bills.Subscribe(ctx, "", NewSubscription{CustomerID: w.customer(t), PlanCode: "nope"})
			return err
		}(), "plan_code"},
		{"an override of a meter the plan does not price", func() error {
			_, err := w.bills.Subscribe(ctx, "", NewSubscription{CustomerID: w.customer(t), PlanCode: p.Code,
				PriceOverrides: []metering.NewPrice{newPrice(t, other, "USD", unit)}})
			return err
		}(), "price_overrides[0].meter_code"},
	} {
		if !errors.Is(tc.err, fault.Invalid) || fault.FieldOf(tc.err) != tc.field {
			t.Errorf("%s: %v (field %q), want invalid %s", tc.name, tc.err, fault.FieldOf(tc.err), tc.field)
		}
	}
	cus := w.customer(t)
	w.subscribe(t, cus, p.Code)
	if _, err := w.bills.Subscribe(ctx, "", NewSubscription{CustomerID: cus, PlanCode: p.Code}); !errors.Is(err, fault.Conflict) {
		t.Errorf("a second active subscription: %v, want a conflict", err)
	}
	if _, err := w.bills.ArchivePlan(ctx, p.Code); err != nil {
		t.Fatal(err)
	}
	_, err := w.bills.Subscribe(ctx, "", NewSubscription{CustomerID: w.customer(t), PlanCode: p.Code})
	if !errors.Is(err, fault.Invalid) || fault.FieldOf(err) != "plan_code" {
		t.Errorf("an archived plan: %v, want invalid plan_code", err)
	}
	// Nothing half-applied: the refused subscriptions left no row.
	var n int
	if err := w.db.Pool.QueryRow(ctx, `SELECT count(*) FROM subscriptions WHERE plan_code = $1`, p.Code).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d subscriptions to the plan, want 1", n)
	}
	_ = uuid.Nil
}

// lines is an invoice's lines as "type amount".
func lines(inv Invoice) []string {
	var out []string
	for _, l := range inv.Lines {
		out = append(out, l.Kind+" "+l.Amount.String())
	}
	return out
}

func (w *world) subWallet(t *testing.T, sub Subscription, asset string) wallet.WalletID {
	t.Helper()
	for _, sw := range sub.Wallets {
		if sw.Asset == asset {
			return sw.WalletID
		}
	}
	t.Fatalf("subscription %s has no %s wallet: %+v", sub.ID, asset, sub.Wallets)
	return wallet.WalletID{}
}
