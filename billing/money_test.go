package billing

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/wallet"
)

// pricedAsset describes a fresh credits asset sold in USD at price.
func (w *world) pricedAsset(t *testing.T, price string) string {
	t.Helper()
	code := "CR" + strings.ToUpper(strings.ReplaceAll(uuid.NewString()[:8], "-", ""))
	p := ledger.MustAmount(price)
	usd := "USD"
	if _, err := w.wallets.PutAsset(context.Background(), code, wallet.NewAsset{Kind: wallet.AssetCredits, Currency: &usd, UnitPrice: &p}); err != nil {
		t.Fatal(err)
	}
	return code
}

// setPrice changes asset's unit price now.
func (w *world) setPrice(t *testing.T, asset, price string) {
	t.Helper()
	p := ledger.MustAmount(price)
	usd := "USD"
	if _, err := w.wallets.PutAsset(context.Background(), asset, wallet.NewAsset{Kind: wallet.AssetCredits, Currency: &usd, UnitPrice: &p}); err != nil {
		t.Fatal(err)
	}
}

// walletIn makes a customer and a wallet in asset.
func (w *world) walletIn(t *testing.T, asset string) wallet.Wallet {
	t.Helper()
	ctx := context.Background()
	c, err := w.wallets.CreateCustomer(ctx, wallet.Customer{ID: unique("cus-")})
	if err != nil {
		t.Fatal(err)
	}
	wl, err := w.wallets.CreateWallet(ctx, wallet.NewWallet{CustomerID: c.ID, Asset: asset, OveragePolicy: wallet.PolicyAllow})
	if err != nil {
		t.Fatal(err)
	}
	return wl
}

// entrySums are an entry's postings summed per asset and account code,
// debits positive.
func (w *world) entrySums(t *testing.T, entry ledger.EntryID) map[string]string {
	t.Helper()
	rows, err := w.db.Pool.Query(context.Background(), `SELECT p.asset, a.code,
			SUM(CASE WHEN p.direction = 'debit' THEN p.amount ELSE -p.amount END)
		FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
		WHERE p.entry_id = $1 AND NOT p.pending GROUP BY p.asset, a.code`, entry)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	perAsset := map[string]ledger.Amount{}
	for rows.Next() {
		var (
			asset, code string
			sum         ledger.Amount
		)
		if err := rows.Scan(&asset, &code, &sum); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(code, "overage:") || strings.HasPrefix(code, "rounding:customer:") || strings.HasPrefix(code, "billable:") {
			code = strings.SplitN(code, ":", 2)[0]
		}
		if !sum.IsZero() {
			out[asset+" "+code] = sum.String()
		}
		perAsset[asset] = perAsset[asset].Add(sum)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for asset, s := range perAsset {
		if !s.IsZero() {
			t.Fatalf("entry %s is off by %s %s", entry, s, asset)
		}
	}
	return out
}

// A CREDITS asset at 0.01 USD, a wallet with 1,000 credits and usage of
// 1,500 credits at a per-unit price: the invoice is in USD, with a usage
// line of 500 credits for 5.00. The credits settle into the asset's
// conversion account, the money goes Dr receivable / Cr conversion in USD.
func TestPricedWalletInvoicesInMoney(t *testing.T) {
	w := newWorld(t)
	asset := w.pricedAsset(t, "0.01")
	wl := w.walletIn(t, asset)
	cus := wl.CustomerID
	w.grant(t, wl.ID, "1000")
	m := w.meter(t, metering.Meter{Code: "calls", Aggregation: metering.Sum, Property: "n"})
	w.price(t, m, asset, `{"model":"per_unit","unit_price":"1"}`)
	w.ingest(t, usageEvent("money-"+cus, cus, m.EventName, map[string]any{"n": 1500}))
	inv := w.closeCycle(t, wl.ID)
	if inv.Currency != "USD" || inv.MinorUnits != 2 || len(inv.Lines) != 1 {
		t.Fatalf("invoice %+v", inv)
	}
	l := inv.Lines[0]
	if l.Kind != LineUsage || l.Quantity.String() != "500" || l.Credits == nil || l.Credits.String() != "500" ||
		l.CreditPrice == nil || l.CreditPrice.String() != "0.01" || l.UnitPrice.String() != "0.01" || l.Amount.String() != "5" {
		t.Fatalf("line %+v", l)
	}
	if inv.Subtotal.String() != "5" || inv.Total.String() != "5" || !inv.CarriedOut.IsZero() || !inv.CarriedIn.IsZero() {
		t.Fatalf("subtotal %s total %s carried %s", inv.Subtotal, inv.Total, inv.CarriedOut)
	}
	got := w.entrySums(t, inv.EntryID)
	want := map[string]string{
		asset + " conversion": "500", asset + " overage": "-500",
		"USD receivable:invoices": "5", "USD conversion": "-5",
	}
	if len(got) != len(want) {
		t.Fatalf("postings %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("postings %v, want %v", got, want)
		}
	}
	// Read back, the lines keep credits and money side by side.
	back, err := w.bills.Invoice(context.Background(), inv.ID)
	if err != nil || back.Currency != "USD" || back.Lines[0].Credits == nil || back.Lines[0].Credits.String() != "500" {
		t.Fatalf("read back %+v %v", back, err)
	}
	if ev := w.outbox(t, wl.ID, TopicInvoiceCreated); len(ev) != 1 || ev[0].Data["currency"] != "USD" || ev[0].Data["total"] != "5" {
		t.Fatalf("invoice.created %+v", ev)
	}
}

// A fraction of a cent is carried in money, in the customer's rounding
// account, to the next invoice.
func TestMoneyRoundingCarriedToNextInvoice(t *testing.T) {
	w := newWorld(t)
	asset := w.pricedAsset(t, "0.003")
	wl := w.walletIn(t, asset)
	want := []struct{ debit, subtotal, total, carried string }{
		{"1", "0.003", "0", "0.003"},
		{"3", "0.009", "0.01", "0.002"},
		{"0.5", "0.0015", "0", "0.0035"},
	}
	var billed, owed ledger.Amount
	for i, c := range want {
		w.mustDebit(t, wl.ID, c.debit)
		inv := w.closeCycle(t, wl.ID)
		if inv.Currency != "USD" || inv.Subtotal.String() != c.subtotal || inv.Total.String() != c.total || inv.CarriedOut.String() != c.carried {
			t.Fatalf("cycle %d: %s + %s → %s carried %s, want %+v", i, inv.Subtotal, inv.CarriedIn, inv.Total, inv.CarriedOut, c)
		}
		if l := inv.Lines[0]; l.Kind != LineDebits || l.Credits.String() != c.debit || l.Amount.String() != c.subtotal {
			t.Fatalf("cycle %d: line %+v", i, l)
		}
		billed, owed = billed.Add(inv.Total), owed.Add(inv.Subtotal)
		w.clock.Advance(32 * 24 * time.Hour)
	}
	acc, err := w.l.Account(context.Background(), customerRounding(wl.CustomerID, "USD"))
	if err != nil {
		t.Fatal(err)
	}
	if carried := acc.Posted(ledger.Debit); carried.String() != "0.0035" || !billed.Add(carried).Equal(owed) {
		t.Fatalf("billed %s + carried %s ≠ owed %s", billed, carried, owed)
	}
	// The wallet's own rounding account (in credits) is not used.
	racc, err := w.l.Account(context.Background(), wallet.RoundingAccount(wl.ID))
	if err != nil || !racc.Posted(ledger.Debit).IsZero() {
		t.Fatalf("wallet rounding %+v %v", racc, err)
	}
}

// A price change mid-period applies from the next period: a period
// converts at the rate in force at its start.
func TestRateChangeAppliesFromNextPeriod(t *testing.T) {
	w := newWorld(t)
	asset := w.pricedAsset(t, "0.01")
	wl := w.walletIn(t, asset)
	w.clock.Advance(10 * 24 * time.Hour)
	w.setPrice(t, asset, "0.02")
	w.mustDebit(t, wl.ID, "100")
	_, end := wallet.Cycle(wl.CreatedAt, wl.CreatedAt)
	w.clock.Advance(end.Sub(w.clock.Now()) + time.Hour) // into the second cycle
	n, err := w.bills.CloseDueCycles(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("closed %d: %v", n, err)
	}
	w.mustDebit(t, wl.ID, "100")
	second := w.closeCycle(t, wl.ID)
	list, _, err := w.bills.Invoices(context.Background(), wl.CustomerID, nil, 10)
	if err != nil || len(list) != 2 {
		t.Fatalf("invoices %+v %v", list, err)
	}
	first := list[0] // both were issued at one instant: found by period
	if first.ID == second.ID {
		first = list[1]
	}
	if first.Total.String() != "1" || first.Lines[0].CreditPrice.String() != "0.01" {
		t.Fatalf("first period at the old rate: %+v", first)
	}
	if second.Total.String() != "2" || second.Lines[0].CreditPrice.String() != "0.02" {
		t.Fatalf("second period at the new rate: %+v", second)
	}
}

// Credits priced only after the period started, and described credits
// without a price, are invoiced in the asset as before.
func TestUnpricedAndLatePricedInvoicesInAsset(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	plain := "CR" + strings.ToUpper(strings.ReplaceAll(uuid.NewString()[:8], "-", ""))
	if _, err := w.wallets.PutAsset(ctx, plain, wallet.NewAsset{Kind: wallet.AssetCredits}); err != nil {
		t.Fatal(err)
	}
	wl := w.walletIn(t, plain)
	w.mustDebit(t, wl.ID, "1.234")
	w.clock.Advance(time.Hour)
	w.setPrice(t, plain, "0.01") // priced after the period started
	w.mustDebit(t, wl.ID, "2")
	inv := w.closeCycle(t, wl.ID)
	if inv.Currency != plain || inv.Total.String() != "3.23" || inv.Lines[0].Credits != nil || inv.Lines[0].CreditPrice != nil {
		t.Fatalf("invoice of a period priced late %+v", inv)
	}
	w.clock.Advance(32 * 24 * time.Hour)
	// The next period starts priced: money.
	w.mustDebit(t, wl.ID, "300")
	w.clock.Advance(32 * 24 * time.Hour)
	// The credits rest of the invoices in credits (0.004) is carried into
	// the first money invoice at the rate: 0.00004 USD.
	if inv := w.closeCycle(t, wl.ID); inv.Currency != "USD" || inv.Total.String() != "3" || inv.CarriedIn.String() != "0.00004" ||
		inv.CarriedOut.String() != "0.00004" {
		t.Fatalf("invoice of a priced period %+v", inv)
	}
	racc, err := w.l.Account(ctx, wallet.RoundingAccount(wl.ID))
	if err != nil || !racc.Posted(ledger.Debit).IsZero() {
		t.Fatalf("wallet rounding after the first money invoice %+v %v", racc, err)
	}
	cacc, err := w.l.Account(ctx, customerRounding(wl.CustomerID, "USD"))
	if err != nil || cacc.Posted(ledger.Debit).String() != "0.00004" {
		t.Fatalf("customer rounding %+v %v", cacc, err)
	}
}
