package billing

import (
	"testing"

	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

// Lines in money, without a database: every line keeps its quantity and
// shows its credits and the credit price beside its money; a per-unit
// line's money unit price is exact (credits per unit × credit price); the
// subtotal is the sum of the amounts.
func TestMoneyLines(t *testing.T) {
	one := decimal.NewFromInt(1)
	tp := wallet.TopupID{2}
	st := wallet.Settlement{
		Usage: []wallet.Owed{
			{Description: "calls", Quantity: decimal.NewFromInt(500), Amount: ledger.MustAmount("500"), UnitPrice: &one},
			{Description: "tokens", Quantity: decimal.NewFromInt(3), Amount: ledger.MustAmount("0.1")},
		},
		Debits:     ledger.MustAmount("7.5"),
		Topups:     []wallet.OwedTopup{{ID: tp, Amount: ledger.MustAmount("250")}},
		Adjustment: ledger.MustAmount("-10"),
	}
	conv := Conversion{Asset: "GEMS", Currency: "USD", CreditPrice: decimal.RequireFromString("0.01"), MinorUnits: 2}
	lines, subtotal, err := moneyLines(st, conv)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"usage calls 500 × 0.01 = 5 (500 credits at 0.01)",
		"usage tokens 3 × 0.00033333333333 = 0.001 (0.1 credits at 0.01)",
		"debits Debits and captures not covered by credits 1 × 0.075 = 0.075 (7.5 credits at 0.01)",
		"topup Auto top-up 0001-01-01 1 × 2.5 = 2.5 (250 credits at 0.01)",
		"adjustment Voided top-up credits 1 × -0.1 = -0.1 (-10 credits at 0.01)",
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d: %+v", len(lines), len(want), lines)
	}
	for i, l := range lines {
		if l.Credits == nil || l.CreditPrice == nil {
			t.Fatalf("line %d has no credits or credit price: %+v", i, l)
		}
		s := l.Kind + " " + l.Description + " " + l.Quantity.String() + " × " + l.UnitPrice.String() + " = " + l.Amount.String() +
			" (" + l.Credits.String() + " credits at " + l.CreditPrice.String() + ")"
		if s != want[i] {
			t.Errorf("line %d: %s, want %s", i, s, want[i])
		}
	}
	if lines[3].TopupID == nil || *lines[3].TopupID != tp {
		t.Errorf("the top-up line names %v", lines[3].TopupID)
	}
	if subtotal.String() != "7.476" {
		t.Fatalf("subtotal %s, want 7.476", subtotal)
	}
	// The credits the lines show are what was settled.
	var credits ledger.Amount
	for _, l := range lines {
		credits = credits.Add(*l.Credits)
	}
	if !credits.Equal(ledger.MustAmount("747.6")) {
		t.Fatalf("credits %s", credits)
	}
	// Unpriced lines keep no credits fields: linesOf is unchanged.
	for _, l := range linesOf(st) {
		if l.Credits != nil || l.CreditPrice != nil {
			t.Fatalf("unpriced line %+v", l)
		}
	}
}

// Rounding in money carries across invoices: 0.3 credits at 0.01 USD is
// 0.003 USD, billed 0 and carried until the carries make a cent.
func TestMoneyRoundingCarries(t *testing.T) {
	conv := Conversion{Asset: "GEMS", Currency: "USD", CreditPrice: decimal.RequireFromString("0.01"), MinorUnits: 2}
	var carried, billed ledger.Amount
	for i, want := range []struct{ total, carried string }{{"0", "0.003"}, {"0", "0.006"}, {"0", "0.009"}, {"0.01", "0.002"}} {
		_, subtotal, err := moneyLines(wallet.Settlement{Debits: ledger.MustAmount("0.3")}, conv)
		if err != nil {
			t.Fatal(err)
		}
		total, out, err := round(subtotal, carried, conv.MinorUnits)
		if err != nil || total.String() != want.total || out.String() != want.carried {
			t.Fatalf("invoice %d: total %s carried %s (%v), want %+v", i, total, out, err, want)
		}
		billed, carried = billed.Add(total), out
	}
	if !billed.Add(carried).Equal(ledger.MustAmount("0.012")) {
		t.Fatalf("billed %s + carried %s", billed, carried)
	}
}

// The money side of a conversion is one balanced transfer, the other way
// for a credit; the customer's rounding account is the same for the same
// customer and currency, and differs otherwise.
func TestConvertPostingsAndCustomerRounding(t *testing.T) {
	m := MoneyAccounts{Receivable: ledger.AccountID{1}, Conversion: ledger.AccountID{2}}
	for _, c := range []struct {
		subtotal    string
		n           int
		debit, cred ledger.AccountID
	}{{"5", 2, m.Receivable, m.Conversion}, {"-5", 2, m.Conversion, m.Receivable}, {"0", 0, ledger.AccountID{}, ledger.AccountID{}}} {
		ps := convertPostings(m, ledger.MustAmount(c.subtotal))
		if len(ps) != c.n {
			t.Fatalf("%s: %d postings", c.subtotal, len(ps))
		}
		if c.n > 0 && (ps[0].Account != c.debit || ps[0].Side != ledger.Debit || ps[1].Account != c.cred || ps[1].Side != ledger.Credit ||
			!ps[0].Amount.Equal(ps[1].Amount) || !ps[0].Amount.IsPositive()) {
			t.Fatalf("%s: postings %+v", c.subtotal, ps)
		}
	}
	if customerRounding("cus-1", "USD") != customerRounding("cus-1", "USD") ||
		customerRounding("cus-1", "USD") == customerRounding("cus-1", "EUR") ||
		customerRounding("cus-1", "USD") == customerRounding("cus-2", "USD") {
		t.Fatal("customer rounding accounts are not one per customer and currency")
	}
}
