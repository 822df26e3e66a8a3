package billing

import (
	"context"
	"fmt"
	"testing"

	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/wallet"
)

// Usage the credits did not cover is invoiced one line per meter and
// dimensions, at the price that charged it, and the invoice equals the
// overage the ledger holds.
func TestInvoiceEqualsPricedOverage(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	wl := w.wallet(t, wallet.PolicyBlock)
	cus := wl.CustomerID
	w.grant(t, wl.ID, "0.004") // covers the first 2,000 input tokens of "big"
	m := w.meter(t, metering.Meter{Code: "tokens", Aggregation: metering.Sum, Property: "tokens", GroupBy: []string{"model"}})
	w.price(t, m, "CREDITS", `{"model":"per_unit","unit_price":"0.000002","dimensions":{"model":"big"}}`)
	w.price(t, m, "CREDITS", `{"model":"graduated","tiers":[{"up_to":"1000","unit_price":"0.00001"},{"up_to":null,"unit_price":"0.000001"}]}`)
	var evs []map[string]any
	for i := range 5 {
		evs = append(evs, usageEvent(fmt.Sprintf("inv-big-%d-%s", i, cus), cus, m.EventName, map[string]any{"tokens": 1500, "model": "big"}))
	}
	for i := range 3 {
		evs = append(evs, usageEvent(fmt.Sprintf("inv-small-%d-%s", i, cus), cus, m.EventName, map[string]any{"tokens": 900, "model": "small"}))
	}
	w.ingest(t, evs...)
	// big: 7,500 tokens × 0.000002 = 0.015, of which 0.004 covered.
	// small: 2,700 tokens graduated = 1000×0.00001 + 1700×0.000001 = 0.0117.
	overage := w.balance(t, wl.ID).Overage
	if !overage.Equal(ledger.MustAmount("0.0227")) {
		t.Fatalf("overage %s, want 0.0227", overage)
	}
	inv, _, err := ledger.Unpack(w.bills.CloseCycle(ctx, wl.ID))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ qty, price, amount string }{
		m.Code + " (model=big)":   {"5500", "0.000002", "0.011"},
		m.Code + " (model=small)": {"2700", "0.000004333333", "0.0117"},
	}
	if len(inv.Lines) != len(want) {
		t.Fatalf("lines %+v", inv.Lines)
	}
	var sum ledger.Amount
	for _, l := range inv.Lines {
		wl, ok := want[l.Description]
		if !ok || l.Kind != LineUsage || l.Quantity.String() != wl.qty || l.UnitPrice.String() != wl.price || l.Amount.String() != wl.amount {
			t.Errorf("line %+v, want %+v", l, wl)
		}
		sum = sum.Add(l.Amount)
	}
	if !inv.Subtotal.Equal(overage) || !sum.Equal(overage) || !inv.Total.Equal(ledger.MustAmount("0.02")) ||
		!inv.CarriedOut.Equal(ledger.MustAmount("0.0027")) {
		t.Fatalf("invoice subtotal %s total %s carried %s, lines sum %s, overage %s", inv.Subtotal, inv.Total, inv.CarriedOut, sum, overage)
	}
	if bal := w.balance(t, wl.ID); !bal.Overage.IsZero() {
		t.Fatalf("overage after invoicing %s", bal.Overage)
	}
	// Later usage starts the next invoice's lines from zero.
	w.ingest(t, usageEvent("inv-after-"+cus, cus, m.EventName, map[string]any{"tokens": 1000, "model": "big"}))
	var lines int
	var amount ledger.Amount
	if err := w.db.Pool.QueryRow(ctx, `SELECT count(*), COALESCE(SUM(amount), 0) FROM overage_lines WHERE wallet_id = $1`, wl.ID).Scan(&lines, &amount); err != nil {
		t.Fatal(err)
	}
	if lines != 1 || !amount.Equal(ledger.MustAmount("0.002")) {
		t.Fatalf("open lines after the invoice: %d for %s", lines, amount)
	}
}

// A volume price's credit back first pays down uncovered usage: the
// invoice line's amount drops by it, and its units still count.
func TestCreditBackLowersTheInvoiceLine(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	wl := w.wallet(t, wallet.PolicyBlock)
	cus := wl.CustomerID // no credits: everything is overage
	m := w.meter(t, metering.Meter{Code: "units", Aggregation: metering.Sum, Property: "n"})
	w.price(t, m, "CREDITS", `{"model":"volume","tiers":[{"up_to":"1000","unit_price":"0.01"},{"up_to":null,"unit_price":"0.008"}]}`)
	w.ingest(t, usageEvent("cb1-"+cus, cus, m.EventName, map[string]any{"n": 900})) // 9
	w.ingest(t, usageEvent("cb2-"+cus, cus, m.EventName, map[string]any{"n": 200})) // 1,100 at 0.008 = 8.8: 0.2 back
	inv, _, err := ledger.Unpack(w.bills.CloseCycle(ctx, wl.ID))
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Lines) != 1 || inv.Lines[0].Amount.String() != "8.8" || inv.Lines[0].Quantity.String() != "1100" ||
		inv.Lines[0].UnitPrice.String() != "0.008" || !inv.Total.Equal(ledger.MustAmount("8.8")) {
		t.Fatalf("invoice %+v", inv)
	}
}
