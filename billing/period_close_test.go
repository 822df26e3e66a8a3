package billing

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/wallet"
	"github.com/shopspring/decimal"
)

// hybrid is the plan of the hybrid model: a base fee of 20 with usage
// included, a minimum commitment of 50, and included credits; usage
// beyond them priced per unit.
func (w *world) hybrid(t *testing.T, m metering.Meter, asset, unitPrice, included string, rollover bool) Plan {
	t.Helper()
	return w.plan(t, NewPlan{Currency: "USD", BaseFee: amountPtr("20"), MinimumCommitment: amountPtr("50"),
		IncludedCredits: []NewIncludedCredit{{Asset: asset, Amount: amountPtr(included), Rollover: rollover}},
		Prices:          []metering.NewPrice{newPrice(t, m, asset, `{"model":"per_unit","unit_price":"`+unitPrice+`"}`)}})
}

func (w *world) use(t *testing.T, m metering.Meter, customer string, n int) {
	t.Helper()
	w.ingest(t, usageEvent(unique("ev-"), customer, m.EventName, map[string]any{"n": n}))
}

func (w *world) grantsOf(t *testing.T, id wallet.WalletID) []wallet.Grant {
	t.Helper()
	gs, err := w.wallets.Grants(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return gs
}

// TestSubscriptionPeriods: a period's invoice bills the base fee, the
// usage the included credits did not cover and the commitment's
// shortfall; closing twice, early and then by the scheduler, issues one
// invoice; the next period starts with fresh included credits and the old
// ones expire.
func TestSubscriptionPeriods(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	m := w.meter(t, metering.Meter{Code: "tok", Aggregation: metering.Sum, Property: "n"})
	credits := w.pricedAsset(t, "0.01") // credits sold at 0.01 USD
	p := w.hybrid(t, m, credits, "1", "1000", false)
	cus := w.customer(t)
	sub := w.subscribe(t, cus, p.Code)
	usd := w.subWallet(t, sub, credits)
	if gs := w.grantsOf(t, usd); len(gs) != 1 || gs[0].Kind != wallet.Included || !gs[0].Amount.Equal(ledger.MustAmount("1000")) ||
		gs[0].ExpiresAt == nil || !gs[0].ExpiresAt.Equal(sub.CurrentPeriodEnd) {
		t.Fatalf("included grants %+v, want one of 1,000 expiring at %s", gs, sub.CurrentPeriodEnd)
	}
	w.use(t, m, cus, 1500) // 1,500 credits: 1,000 included, 500 beyond

	up, err := w.bills.Upcoming(ctx, cus)
	if err != nil || len(up) != 1 || up[0].Status != InvoiceUpcoming || !up[0].Total.Equal(ledger.MustAmount("50")) {
		t.Fatalf("upcoming %+v %v, want one of 50", up, err)
	}
	inv, _, err := ledger.Unpack(w.bills.ClosePeriod(ctx, sub.ID))
	if err != nil {
		t.Fatal(err)
	}
	if inv.Number == nil || !slices.Equal(lines(inv), lines(up[0])) {
		t.Fatalf("the invoice %v (number %v) is not its preview %v", lines(inv), inv.Number, lines(up[0]))
	}
	want := []string{"base_fee 20", "usage 5", "commitment_true_up 25"}
	if got := lines(inv); !slices.Equal(got, want) || !inv.Total.Equal(ledger.MustAmount("50")) || inv.Currency != "USD" {
		t.Fatalf("invoice %v total %s %s, want %v total 50 USD", got, inv.Total, inv.Currency, want)
	}
	if u := inv.Lines[1]; u.Credits == nil || !u.Credits.Equal(ledger.MustAmount("500")) || u.CreditPrice == nil ||
		!u.CreditPrice.Equal(decimal.RequireFromString("0.01")) || !u.Quantity.Equal(decimal.NewFromInt(500)) {
		t.Fatalf("usage line %+v, want 500 units, 500 credits at 0.01", u)
	}
	if out, err := json.MarshalIndent(inv, "", "  "); err == nil {
		t.Logf("the invoice:\n%s", out)
	}
	again, replayed, err := ledger.Unpack(w.bills.ClosePeriod(ctx, sub.ID))
	if err != nil || !replayed || again.ID != inv.ID {
		t.Fatalf("closing again: %s replayed %v %v, want the same invoice %s", again.ID, replayed, err, inv.ID)
	}

	// The period ends: the scheduler, twice and from two processes,
	// closes it once (the early close's invoice) and starts the next.
	w.clock.t = sub.CurrentPeriodEnd.Add(time.Minute)
	other := worldOn(t, w.db)
	other.clock = w.clock
	var wg sync.WaitGroup
	for _, svc := range []*Service{w.bills, other.bills, w.bills} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := svc.CloseDuePeriods(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var n int
	if err := w.db.Pool.QueryRow(ctx, `SELECT count(*) FROM invoices WHERE subscription_id = $1`, sub.ID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d invoices of the first period, want 1", n)
	}
	next, err := w.bills.Subscription(ctx, sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !next.CurrentPeriodStart.Equal(sub.CurrentPeriodEnd) || next.Status != SubActive {
		t.Fatalf("after the roll: %+v, want a period from %s", next, sub.CurrentPeriodEnd)
	}
	if _, err := w.wallets.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	var fresh, expired int
	for _, g := range w.grantsOf(t, usd) {
		switch {
		case g.Status == wallet.GrantActive && g.Amount.Equal(ledger.MustAmount("1000")) && g.EffectiveAt.Equal(w.clock.Now()):
			fresh++
		case g.Status == wallet.GrantExpired:
			expired++
		}
	}
	if fresh != 1 || expired != 1 {
		t.Fatalf("grants %+v: want the new period's 10 and the old one expired", w.grantsOf(t, usd))
	}

	// The second period, without usage: base fee and the commitment.
	w.clock.t = next.CurrentPeriodEnd.Add(time.Minute)
	if _, err := w.bills.CloseDuePeriods(ctx); err != nil {
		t.Fatal(err)
	}
	invs, _, err := w.bills.Invoices(ctx, cus, nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(invs) != 2 || !slices.Equal(lines(invs[0]), []string{"base_fee 20", "commitment_true_up 30"}) {
		t.Fatalf("invoices %v, want the second period's base fee and a true-up of 30", invs)
	}
}

// TestIncludedCreditsRollOver: without rollover the rest of a period's
// included credits expires at its end (breakage); with rollover it carries
// into the next.
func TestIncludedCreditsRollOver(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	m := w.meter(t, metering.Meter{Code: "tok", Aggregation: metering.Sum, Property: "n"})
	credits := w.pricedAsset(t, "0.01")
	expiring, rolling := w.hybrid(t, m, credits, "1", "1000", false), w.hybrid(t, m, credits, "1", "1000", true)
	a, b := w.customer(t), w.customer(t)
	subA, subB := w.subscribe(t, a, expiring.Code), w.subscribe(t, b, rolling.Code)
	wa, wb := w.subWallet(t, subA, credits), w.subWallet(t, subB, credits)
	w.use(t, m, a, 400) // 400 of the 1,000
	w.use(t, m, b, 400)
	w.clock.t = subA.CurrentPeriodEnd.Add(time.Minute)
	if _, err := w.bills.CloseDuePeriods(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.wallets.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if bal := w.balance(t, wa); !bal.Available.Equal(ledger.MustAmount("1000")) {
		t.Fatalf("without rollover: available %s, want the new period's 1,000 only", bal.Available)
	}
	var expired ledger.Amount
	for _, g := range w.grantsOf(t, wa) {
		if g.Status == wallet.GrantExpired {
			expired = expired.Add(g.Expired)
		}
	}
	if !expired.Equal(ledger.MustAmount("600")) {
		t.Fatalf("expired %s to breakage, want the 600 left", expired)
	}
	if bal := w.balance(t, wb); !bal.Available.Equal(ledger.MustAmount("1600")) {
		t.Fatalf("with rollover: available %s, want 600 carried + 1,000 new", bal.Available)
	}
}

// TestChangePlanAndCancel: a change at the period's end takes effect with
// the next period; a change now closes the period now, prorated; a cancel
// at the period's end issues the final invoice and grants nothing more.
func TestChangePlanAndCancel(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	m := w.meter(t, metering.Meter{Code: "tok", Aggregation: metering.Sum, Property: "n"})
	basic := w.hybrid(t, m, "USD", "0.01", "10", false)
	pro := w.plan(t, NewPlan{Currency: "USD", BaseFee: amountPtr("100"),
		IncludedCredits: []NewIncludedCredit{{Asset: "USD", Amount: amountPtr("40")}},
		Prices:          []metering.NewPrice{newPrice(t, m, "USD", `{"model":"per_unit","unit_price":"0.005"}`)}})
	cus := w.customer(t)
	sub := w.subscribe(t, cus, basic.Code)
	usd := w.subWallet(t, sub, "USD")

	// At the period's end.
	if _, err := w.bills.ChangePlan(ctx, sub.ID, pro.Code, AtPeriodEnd); err != nil {
		t.Fatal(err)
	}
	w.clock.t = sub.CurrentPeriodEnd.Add(time.Minute)
	if _, err := w.bills.CloseDuePeriods(ctx); err != nil {
		t.Fatal(err)
	}
	s2, err := w.bills.Subscription(ctx, sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	if s2.PlanCode != pro.Code || !s2.CurrentPeriodStart.Equal(sub.CurrentPeriodEnd) {
		t.Fatalf("after the period: plan %s from %s, want %s from %s", s2.PlanCode, s2.CurrentPeriodStart, pro.Code, sub.CurrentPeriodEnd)
	}
	w.use(t, m, cus, 1000) // at pro's price: 5.00, covered by its 40
	if b := w.balance(t, usd); !b.Consumed.Equal(ledger.MustAmount("5")) {
		t.Fatalf("consumed %s, want 5 at pro's price", b.Consumed)
	}

	// Now, halfway through the period: prorated base fee, and a new
	// period on basic from now.
	half := s2.CurrentPeriodStart.Add(s2.CurrentPeriodEnd.Sub(s2.CurrentPeriodStart) / 2)
	w.clock.t = half
	s3, err := w.bills.ChangePlan(ctx, sub.ID, basic.Code, AtNow)
	if err != nil {
		t.Fatal(err)
	}
	if s3.PlanCode != basic.Code || !s3.CurrentPeriodStart.Equal(half) {
		t.Fatalf("after a change now: plan %s from %s, want %s from %s", s3.PlanCode, s3.CurrentPeriodStart, basic.Code, half)
	}
	// The same change again (a retry) cuts nothing and grants nothing.
	grantsBefore := len(w.grantsOf(t, usd))
	w.clock.Advance(time.Hour)
	if again, err := w.bills.ChangePlan(ctx, sub.ID, basic.Code, AtNow); err != nil || !again.CurrentPeriodStart.Equal(half) {
		t.Fatalf("a retried change now: %+v %v, want the period from %s untouched", again, err, half)
	}
	if n := len(w.grantsOf(t, usd)); n != grantsBefore {
		t.Fatalf("a retried change granted again: %d grants, want %d", n, grantsBefore)
	}
	invs, _, err := w.bills.Invoices(ctx, cus, nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := lines(invs[0]); !slices.Equal(got, []string{"base_fee 50"}) || !invs[0].PeriodEnd.Equal(half) {
		t.Fatalf("the cut period's invoice %v to %s, want half of pro's fee to %s", got, invs[0].PeriodEnd, half)
	}

	// Cancel at the period's end: the final invoice, no more credits.
	if _, err := w.bills.Cancel(ctx, sub.ID, true); err != nil {
		t.Fatal(err)
	}
	grants := len(w.grantsOf(t, usd))
	w.clock.t = s3.CurrentPeriodEnd.Add(time.Minute)
	if _, err := w.bills.CloseDuePeriods(ctx); err != nil {
		t.Fatal(err)
	}
	s4, err := w.bills.Subscription(ctx, sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	if s4.Status != SubCanceled || s4.EndedAt == nil || !s4.EndedAt.Equal(s3.CurrentPeriodEnd) {
		t.Fatalf("after the last period: %s ended %v, want canceled at %s", s4.Status, s4.EndedAt, s3.CurrentPeriodEnd)
	}
	if n := len(w.grantsOf(t, usd)); n != grants {
		t.Fatalf("%d grants after the end, want %d: no more included credits", n, grants)
	}
	invs, _, err = w.bills.Invoices(ctx, cus, nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(invs) != 3 || !invs[0].PeriodStart.Equal(s3.CurrentPeriodStart) {
		t.Fatalf("%d invoices, want 3 with the final one from %s", len(invs), s3.CurrentPeriodStart)
	}
	// Two months later the wallet's own cycle has billed it once (its
	// cycle after the end), not once per month the subscription covered.
	w.clock.t = w.clock.t.AddDate(0, 2, 0)
	for range 3 {
		if _, err := w.bills.CloseDuePeriods(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := w.bills.CloseDueCycles(ctx); err != nil {
			t.Fatal(err)
		}
	}
	after, _, err := w.bills.Invoices(ctx, cus, nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	var cycles int
	for _, inv := range after[:len(after)-3] {
		if inv.WalletID == nil || !inv.PeriodEnd.After(*s4.EndedAt) {
			t.Errorf("after the end: invoice %+v", inv)
		}
		cycles++
	}
	if cycles > 2 {
		t.Fatalf("%d cycle invoices in the two months after the end, want at most 2", cycles)
	}
}
