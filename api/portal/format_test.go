package portal

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
)

func TestFormat(t *testing.T) {
	credits, usd, jpy := unit{code: "CREDITS", minor: 2}, unit{code: "USD", money: true, minor: 2}, unit{code: "JPY", money: true, minor: 0}
	chf := unit{code: "CHF", money: true, minor: 2}
	tests := []struct {
		u    unit
		in   string
		want string
	}{
		{credits, "1234567.5", "1,234,567.5"},
		{credits, "700", "700"},
		{credits, "0.004", "0"},
		{credits, "-1500", "−1,500"},
		{usd, "1234.5", "$1,234.50"},
		{usd, "0.0117", "$0.0117"}, // finer than cents: exact, as invoices print it
		{usd, "-3", "−$3.00"},
		{jpy, "1234", "¥1,234"},
		{chf, "12", "12.00 CHF"},
	}
	for _, tt := range tests {
		if got := tt.u.format(ledger.MustAmount(tt.in)); got != tt.want {
			t.Errorf("%s %s = %q, want %q", tt.u.code, tt.in, got, tt.want)
		}
	}
	if credits.label() != "credits" || usd.label() != "USD" {
		t.Errorf("labels %q %q", credits.label(), usd.label())
	}
}

// One bar per day of the range; only days with usage are points, summed
// per day, the tallest the full height.
func TestChart(t *testing.T) {
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	q := func(s string) decimal.Decimal { return decimal.RequireFromString(s) }
	c := newChart([]metering.UsagePoint{
		{Start: from.AddDate(0, 0, 1), Quantity: q("5")},
		{Start: from.AddDate(0, 0, 4), Quantity: q("10")},
	}, from, from.AddDate(0, 0, 7))
	if len(c.Bars) != 7 || c.Points != 2 {
		t.Fatalf("%d bars, %d points; want 7 and 2", len(c.Bars), c.Points)
	}
	if b := c.Bars[4]; !b.Used || b.Day != "2026-03-05" || b.Quantity != "10" || b.H != float64(chartH-chartTop) {
		t.Errorf("the peak day: %+v", b)
	}
	if b := c.Bars[1]; b.H != float64(chartH-chartTop)/2 {
		t.Errorf("half the peak is half the height: %+v", b)
	}
	if c.Bars[0].Used || c.Max != "10" {
		t.Errorf("%+v", c)
	}
}
