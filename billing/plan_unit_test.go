package billing

import (
	"errors"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
)

// The rules of a plan's definition, with no database.
func TestPlanValidate(t *testing.T) {
	amt := func(s string) *ledger.Amount { a := ledger.MustAmount(s); return &a }
	prio := func(n int) *int { return &n }
	for _, tc := range []struct {
		name  string
		np    NewPlan
		field string // "" valid
	}{
		{"minimal", NewPlan{Code: "basic", Currency: "USD"}, ""},
		{"bad code", NewPlan{Code: "Basic", Currency: "USD"}, "code"},
		{"bad currency", NewPlan{Code: "basic", Currency: "dollars"}, "currency"},
		{"bad interval", NewPlan{Code: "basic", Currency: "USD", Interval: "day"}, "interval"},
		{"negative fee", NewPlan{Code: "basic", Currency: "USD", BaseFee: amt("-0.01")}, "base_fee"},
		{"negative commitment", NewPlan{Code: "basic", Currency: "USD", MinimumCommitment: amt("-1")}, "minimum_commitment"},
		{"fee over the limit", NewPlan{Code: "basic", Currency: "USD", BaseFee: amt("1000000000000001")}, "base_fee"},
		{"bad policy", NewPlan{Code: "basic", Currency: "USD", OveragePolicy: "maybe"}, "overage_policy"},
		{"included without amount", NewPlan{Code: "basic", Currency: "USD", IncludedCredits: []NewIncludedCredit{{Asset: "CREDITS"}}}, "included_credits[0].amount"},
		{"included zero", NewPlan{Code: "basic", Currency: "USD", IncludedCredits: []NewIncludedCredit{{Asset: "CREDITS", Amount: amt("0")}}}, "included_credits[0].amount"},
		{"included twice", NewPlan{Code: "basic", Currency: "USD", IncludedCredits: []NewIncludedCredit{
			{Asset: "CREDITS", Amount: amt("1")}, {Asset: "CREDITS", Amount: amt("2")}}}, "included_credits[1].asset"},
		{"included priority", NewPlan{Code: "basic", Currency: "USD", IncludedCredits: []NewIncludedCredit{
			{Asset: "CREDITS", Amount: amt("1"), Priority: prio(1001)}}}, "included_credits[0].priority"},
		{"too many prices", NewPlan{Code: "basic", Currency: "USD", Prices: make([]metering.NewPrice, 201)}, "prices"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			np := tc.np
			included, err := np.validate(false)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				if np.Interval != Month || np.OveragePolicy != OverageAllow || !np.BaseFee.IsZero() || included == nil {
					t.Errorf("defaults: %+v", np)
				}
				return
			}
			if !errors.Is(err, fault.Invalid) || fault.FieldOf(err) != tc.field {
				t.Errorf("%v (field %q), want invalid %s", err, fault.FieldOf(err), tc.field)
			}
		})
	}
	// A version may leave the currency out (it is the plan's), and gets the
	// included credits' default priority.
	np := NewPlan{IncludedCredits: []NewIncludedCredit{{Asset: "CREDITS", Amount: amt("5")}}}
	included, err := np.validate(true)
	if err != nil || len(included) != 1 || included[0].Priority != 10 {
		t.Fatalf("version: %+v %v", included, err)
	}
}

// A period cut short bills its fee and commitment for the part used.
func TestProration(t *testing.T) {
	start := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	end := Month.add(start, 1) // 30 days
	for _, tc := range []struct {
		cut  time.Time
		fee  string
		want string
	}{
		{end, "20", "20"},
		{end.Add(time.Hour), "20", "20"}, // never more than the whole
		{start.AddDate(0, 0, 15), "20", "10"},
		{start.AddDate(0, 0, 10), "30", "10"},
		{start.Add(24 * time.Hour), "30", "1"},
	} {
		o := &closePeriodOp{start: start, end: end, cut: tc.cut}
		got, err := o.prorate(ledger.MustAmount(tc.fee))
		if err != nil || !got.Equal(ledger.MustAmount(tc.want)) {
			t.Errorf("fee %s cut at %s: %s %v, want %s", tc.fee, tc.cut, got, err, tc.want)
		}
	}
	if s := (&closePeriodOp{start: start, end: end, cut: start.AddDate(0, 0, 7)}).share(); !s.Equal(decimal.RequireFromString("0.233333")) {
		t.Errorf("share of 7 days in 30: %s", s)
	}
}
