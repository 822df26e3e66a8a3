package metering

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// Price resolution with no database: which book and which price of it
// charges an event, at the event's timestamp.

// testBook is a subscription's book as billing would answer it: covered
// from `from` on, consulting scopes in order, in one period.
type testBook struct {
	scopes []string
	from   time.Time
	period time.Time
}

func (b testBook) Scopes() []string { return b.scopes }

func (b testBook) At(t time.Time) ([]string, time.Time, bool) {
	if t.Before(b.from) {
		return nil, time.Time{}, false
	}
	return b.scopes, b.period, true
}

func TestPriceResolution(t *testing.T) {
	const (
		plan     = "plan:v1"
		override = "subscription:s1"
	)
	unit := func(p string) string { return fmt.Sprintf(`{"model":"per_unit","unit_price":"%s"}`, p) }
	unitDims := func(p, model string) string {
		return fmt.Sprintf(`{"model":"per_unit","unit_price":"%s","dimensions":{"model":%q}}`, p, model)
	}
	change := mt0.Add(-time.Hour) // a price change an hour before mt0
	archived := mt0.Add(-10 * time.Minute)
	subStart := mt0.Add(-30 * time.Minute)
	next := mt0.Add(-5 * time.Minute)
	period := subStart

	type ev struct {
		customer string
		meter    string // the event's name
		props    string
		at       time.Time
		want     []string // "asset amount" per charge; "-" for counted, not priced
		period   time.Time
	}
	m := newMemMetering(t)
	m.customer("free", "CREDITS", "USD")
	m.customer("sub", "CREDITS", "USD")
	tokens := m.meter(Meter{Code: "tokens", EventName: "llm", Aggregation: Sum, Property: "n", GroupBy: []string{"model"}})
	images := m.meter(Meter{Code: "images", EventName: "img", Aggregation: Count})
	gone := m.meter(Meter{Code: "gone", EventName: "old", Aggregation: Count})
	// The default book: tokens at 1 then 2 from `change`; images at 5 in
	// USD; `gone` archived ten minutes before mt0.
	m.priceAt(tokens, DefaultBook, "CREDITS", unit("1"), Beginning, nil)
	m.priceAt(tokens, DefaultBook, "CREDITS", unit("2"), change, nil)
	m.priceAt(images, DefaultBook, "USD", unit("5"), Beginning, nil)
	m.priceAt(gone, DefaultBook, "CREDITS", unit("1"), Beginning, &archived)
	// The plan prices tokens only, at 10, with a future version's price
	// (the scope's second price) five minutes before mt0; the subscription
	// overrides model=big at 30.
	m.priceAt(tokens, plan, "CREDITS", unit("10"), Beginning, nil)
	m.priceAt(tokens, plan, "CREDITS", unit("11"), next, nil)
	m.priceAt(tokens, override, "CREDITS", unitDims("30", "big"), Beginning, nil)
	m.st.books = map[string]Book{"sub": testBook{scopes: []string{override, plan}, from: subStart, period: period}}

	walletCycle := mt0.Add(-48 * time.Hour) // the wallets' first cycle
	for _, tc := range []struct {
		name string
		ev   ev
	}{
		{"default book, before the change", ev{"free", "llm", `{"n":1}`, change.Add(-time.Second), []string{"CREDITS 1"}, walletCycle}},
		{"default book, at the change", ev{"free", "llm", `{"n":1}`, change, []string{"CREDITS 2"}, walletCycle}},
		{"archived: counted, not priced", ev{"free", "old", `{}`, mt0, []string{"-"}, calendarMonth(mt0)}},
		{"archived: priced before its end", ev{"free", "old", `{}`, archived.Add(-time.Second), []string{"CREDITS 1"}, walletCycle}},
		{"subscribed: the plan's price", ev{"sub", "llm", `{"n":1,"model":"small"}`, next.Add(-time.Second), []string{"CREDITS 10"}, period}},
		{"subscribed: the override for its dimensions", ev{"sub", "llm", `{"n":1,"model":"big"}`, mt0, []string{"CREDITS 30"}, period}},
		{"subscribed: the next version's price from its time", ev{"sub", "llm", `{"n":1,"model":"small"}`, next, []string{"CREDITS 11"}, period}},
		{"subscribed: a meter the plan does not price uses the default book", ev{"sub", "img", `{}`, mt0, []string{"USD 5"}, period}},
		{"before the subscription: the default book", ev{"sub", "llm", `{"n":1,"model":"small"}`, subStart.Add(-time.Second), []string{"CREDITS 2"}, walletCycle}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, code := m.send(tc.ev.customer, tc.ev.meter, tc.ev.props, tc.ev.at)
			if code != "" {
				t.Fatalf("refused: %s", code)
			}
			var got []string
			for _, c := range a.Charges {
				if c.Asset == "" {
					got = append(got, "-")
					continue
				}
				got = append(got, c.Asset+" "+c.Amount.String())
			}
			if !slices.Equal(got, tc.ev.want) {
				t.Errorf("charges %v, want %v", got, tc.ev.want)
			}
			recs := m.st.records
			if p := recs[len(recs)-1].period; !p.Equal(tc.ev.period) {
				t.Errorf("counted in the period from %s, want %s", p, tc.ev.period)
			}
		})
	}
}
