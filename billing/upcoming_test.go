package billing

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/wallet"
)

// state is what the upcoming invoice must leave as it was: the customer's
// balances, and the database's entries, postings, invoices, outbox rows,
// open overage lines, counters and schedule.
func (w *world) state(t *testing.T, wallets ...wallet.WalletID) string {
	t.Helper()
	var counts []int64
	for _, q := range []string{
		`SELECT count(*) FROM ledger_entries`, `SELECT count(*) FROM ledger_postings`, `SELECT count(*) FROM invoices`,
		`SELECT count(*) FROM outbox`, `SELECT count(*) FROM overage_lines`, `SELECT COALESCE(SUM(last_number), 0) FROM invoice_counters`,
		`SELECT count(*) FROM ledger_balances`,
	} {
		var n int64
		if err := w.db.Pool.QueryRow(context.Background(), q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		counts = append(counts, n)
	}
	var bals []wallet.Balance
	var ends []*time.Time
	for _, id := range wallets {
		bals = append(bals, w.balance(t, id))
		var end *time.Time
		if err := w.db.Pool.QueryRow(context.Background(), `SELECT next_cycle_end FROM wallets WHERE id = $1`, id).Scan(&end); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, end)
	}
	b, err := json.Marshal([]any{counts, bals, ends})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The upcoming invoice is what a close right after issues — lines and
// totals — and asking for it stores, posts and sends nothing.
func TestUpcomingIsTheNextClose(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	wl := w.wallet(t, wallet.PolicyAllow)
	cus := wl.CustomerID
	w.grant(t, wl.ID, "1")
	m := w.meter(t, metering.Meter{Code: "calls", Aggregation: metering.Count})
	w.price(t, m, "CREDITS", `{"model":"per_unit","unit_price":"0.333"}`)
	var evs []map[string]any
	for i := range 7 {
		evs = append(evs, usageEvent(cus+"-up-"+string(rune('a'+i)), cus, m.EventName, map[string]any{}))
	}
	w.ingest(t, evs...)
	w.mustDebit(t, wl.ID, "5.5")
	// A second wallet of the customer, in another asset, owing nothing.
	usd, err := w.wallets.CreateWallet(ctx, wallet.NewWallet{CustomerID: cus, Asset: "USD", OveragePolicy: wallet.PolicyAllow})
	if err != nil {
		t.Fatal(err)
	}

	before := w.state(t, wl.ID, usd.ID)
	up, err := w.bills.Upcoming(ctx, cus)
	if err != nil {
		t.Fatal(err)
	}
	if after := w.state(t, wl.ID, usd.ID); after != before {
		t.Fatalf("the preview changed the database:\nbefore %s\nafter  %s", before, after)
	}
	if len(up) != 2 {
		t.Fatalf("%d upcoming invoices, want one per wallet", len(up))
	}
	for _, inv := range up {
		if inv.Status != InvoiceUpcoming || inv.Number != nil {
			t.Fatalf("upcoming invoice %+v is not marked provisional", inv)
		}
	}
	preview := up[0]
	if preview.WalletID == nil || *preview.WalletID != wl.ID {
		preview = up[1]
	}
	// 7 × 0.333 = 2.331 usage, of which 1 covered; 5.5 debits uncovered.
	if !preview.Subtotal.Equal(w.balance(t, wl.ID).Overage) || len(preview.Lines) != 2 {
		t.Fatalf("preview %+v", preview)
	}

	inv := w.closeCycle(t, wl.ID)
	if inv.Status != InvoiceIssued || inv.Number == nil {
		t.Fatalf("issued %+v", inv)
	}
	same := func(a, b Invoice) bool {
		la, _ := json.Marshal(a.Lines)
		lb, _ := json.Marshal(b.Lines)
		return string(la) == string(lb) && a.Subtotal.Equal(b.Subtotal) && a.Total.Equal(b.Total) &&
			a.CarriedIn.Equal(b.CarriedIn) && a.CarriedOut.Equal(b.CarriedOut) && a.PeriodStart.Equal(b.PeriodStart) &&
			a.PeriodEnd.Equal(b.PeriodEnd) && a.Currency == b.Currency && a.CustomerID == b.CustomerID
	}
	if !same(preview, inv) {
		t.Fatalf("preview %+v\nissued  %+v", preview, inv)
	}

	// Closed early: the upcoming invoice is the next cycle's, so far.
	w.mustDebit(t, wl.ID, "1.25")
	up, err = w.bills.Upcoming(ctx, cus)
	if err != nil {
		t.Fatal(err)
	}
	for _, next := range up {
		if next.WalletID == nil || *next.WalletID != wl.ID {
			continue
		}
		if !next.PeriodStart.Equal(inv.PeriodEnd) || !next.Subtotal.Equal(w.balance(t, wl.ID).Overage) {
			t.Fatalf("after the early close: %+v", next)
		}
	}
	if _, err := w.bills.Upcoming(ctx, "nobody-"+cus); err == nil {
		t.Fatal("an unknown customer has upcoming invoices")
	}
}
