package billing

import (
	"testing"

	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

// The rounding rule, without a database: each total is what is owed plus
// what the previous invoice carried, rounded toward zero to the currency's
// minor unit; the rest, less than one minor unit, is carried into the next
// invoice, so billed + carried is everything owed — credits included.
func TestRounding(t *testing.T) {
	type cycle struct{ owed, total, carried string }
	for _, tc := range []struct {
		name   string
		minor  int32
		cycles []cycle
	}{
		{"sub-cent usage is carried until it makes a cent", 2, []cycle{
			{"0.004", "0", "0.004"}, {"0.004", "0", "0.008"}, {"0.004", "0.01", "0.002"},
		}},
		{"the carry completes the next invoice", 2, []cycle{
			{"7.345678", "7.34", "0.005678"}, {"0.004322", "0.01", "0"},
		}},
		{"the last 10^-12 of a cent bills it", 2, []cycle{
			{"0.999999999999", "0.99", "0.009999999999"}, {"0.000000000001", "0.01", "0"}, {"0", "0", "0"},
		}},
		{"no minor unit (JPY)", 0, []cycle{
			{"1234.56", "1234", "0.56"}, {"0.45", "1", "0.01"}, {"0.98", "0", "0.99"}, {"0.01", "1", "0"},
		}},
		{"three minor units (KWD)", 3, []cycle{
			{"1.23456", "1.234", "0.00056"}, {"0.00044", "0.001", "0"}, {"0.0009999", "0", "0.0009999"},
		}},
		{"a credit rounds toward zero too", 2, []cycle{
			{"20.004", "20", "0.004"}, {"-19.995", "-19.99", "-0.001"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var carried, billed, owed ledger.Amount
			for i, c := range tc.cycles {
				total, out, err := round(ledger.MustAmount(c.owed), carried, tc.minor)
				if err != nil {
					t.Fatal(err)
				}
				if total.String() != c.total || out.String() != c.carried {
					t.Fatalf("cycle %d: total %s carried %s, want %s and %s", i, total, out, c.total, c.carried)
				}
				owed, billed, carried = owed.Add(ledger.MustAmount(c.owed)), billed.Add(total), out
				if !billed.Add(carried).Equal(owed) {
					t.Fatalf("cycle %d: billed %s + carried %s ≠ owed %s", i, billed, carried, owed)
				}
			}
		})
	}
}

// The lines of a settlement: a usage line at its per-unit price or the
// average, then debits, top-ups and the adjustment.
func TestLinesOf(t *testing.T) {
	price := decimal.RequireFromString("0.5")
	tp := wallet.TopupID{1}
	st := wallet.Settlement{
		Usage: []wallet.Owed{
			{Description: "calls", Quantity: decimal.NewFromInt(3), Amount: ledger.MustAmount("1.5"), UnitPrice: &price},
			{Description: "tokens", Quantity: decimal.NewFromInt(2700), Amount: ledger.MustAmount("0.0117")},
		},
		Debits:     ledger.MustAmount("2"),
		Topups:     []wallet.OwedTopup{{ID: tp, Amount: ledger.MustAmount("20")}},
		Adjustment: ledger.MustAmount("-1"),
	}
	want := []string{
		"usage calls 3 × 0.5 = 1.5",
		"usage tokens 2700 × 0.000004333333 = 0.0117",
		"debits Debits and captures not covered by credits 1 × 2 = 2",
		"topup Auto top-up 0001-01-01 1 × 20 = 20",
		"adjustment Voided top-up credits 1 × -1 = -1",
	}
	got := linesOf(st)
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d: %+v", len(got), len(want), got)
	}
	for i, l := range got {
		if s := l.Kind + " " + l.Description + " " + l.Quantity.String() + " × " + l.UnitPrice.String() + " = " + l.Amount.String(); s != want[i] {
			t.Errorf("line %d: %s, want %s", i, s, want[i])
		}
	}
	if got[3].TopupID == nil || *got[3].TopupID != tp {
		t.Errorf("the top-up line names %v, want %v", got[3].TopupID, tp)
	}
}
