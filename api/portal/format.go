package portal

import (
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/ledger"
)

// unit is how one asset's amounts are written.
type unit struct {
	code  string
	name  string
	money bool
	minor int32
}

// label names the unit under a figure: "credits", "USD".
func (u unit) label() string {
	switch {
	case u.name != "":
		return u.name
	case u.money:
		return u.code
	case strings.EqualFold(u.code, "CREDITS"):
		return "credits"
	}
	return u.code
}

// format writes an amount for its unit: money with its minor units and
// symbol ($1,234.50, 1,234 JPY), credits grouped with up to the minor
// units' digits and no trailing zeros (1,234.5).
func (u unit) format(a ledger.Amount) string {
	if u.money {
		return formatMoney(a.Decimal(), u.code, u.minor)
	}
	d := a.Decimal().Round(u.minor)
	return groupDigits(d.String())
}

var symbols = map[string]string{"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹"}

// formatMoney writes d in currency with its minor units: exact to them
// (a finer amount keeps its digits, as invoices print it).
func formatMoney(d decimal.Decimal, currency string, minor int32) string {
	s := d.StringFixed(minor)
	if !d.Equal(d.Truncate(minor)) {
		s = d.String()
	}
	neg := strings.HasPrefix(s, "-")
	s = groupDigits(strings.TrimPrefix(s, "-"))
	if sym, ok := symbols[currency]; ok {
		s = sym + s
	} else {
		s += " " + currency
	}
	if neg {
		s = "−" + s
	}
	return s
}

// groupDigits puts thousands separators into a decimal string.
func groupDigits(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	out := b.String()
	if hasFrac {
		out += "." + frac
	}
	if neg {
		out = "−" + out
	}
	return out
}

func longDay(t time.Time) string  { return t.UTC().Format("2 Jan 2006") }
func shortDay(t time.Time) string { return t.UTC().Format("2 Jan") }
