package metering

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

// said is what an event did to one meter, in a line: the meter, its
// dimensions, the aggregate before and after, and the charge.
func (c MeterCharge) said() string {
	s := c.Meter
	if len(c.Dimensions) > 0 {
		s += " " + string(c.Dimensions)
	}
	s += fmt.Sprintf(" %s→%s: %s", c.QuantityBefore, c.QuantityAfter, c.Amount)
	if c.WalletID == nil {
		s += " (unpriced)"
	}
	return s
}

// The marginal usage charge without a database: each event moves its
// meters' aggregates from q0 to q1 and charges price(q1) − price(q0),
// exactly, to the customer's wallet; an event that cannot apply is refused
// whole, with its code, and changes nothing.
func TestMarginalCharge(t *testing.T) {
	type meter struct {
		m      Meter
		prices []string // in CREDITS
	}
	type ev struct {
		customer string        // "": cus-1
		props    string        // JSON
		ago      time.Duration // timestamp before mt0
		said     []string      // per meter, in order
		reject   string
	}
	const (
		perUnit   = `{"model":"per_unit","unit_price":"%s"}`
		graduated = `{"model":"graduated","tiers":[{"up_to":"1000","unit_price":"0.00001"},{"up_to":null,"unit_price":"0.000001"}]}`
		volume    = `{"model":"volume","tiers":[{"up_to":"1000","unit_price":"0.01"},{"up_to":null,"unit_price":"0.008"}]}`
	)
	price := func(unit string) string { return fmt.Sprintf(perUnit, unit) }
	sum := func(code, prop string) Meter { return Meter{Code: code, Aggregation: Sum, Property: prop} }
	for _, tc := range []struct {
		name   string
		meters []meter
		events []ev
	}{
		{"sum, per unit", []meter{{sum("tokens", "tokens"), []string{price("0.000002")}}}, []ev{
			{props: `{"tokens":1500}`, said: []string{"tokens 0→1500: 0.003"}},
			{props: `{"tokens":"0.5"}`, said: []string{"tokens 1500→1500.5: 0.000001"}},
			{props: `{"tokens":0}`, said: []string{"tokens 1500.5→1500.5: 0"}},
			{props: `{"tokens":0.000001}`, said: []string{"tokens 1500.5→1500.500001: 0.000000000002"}},
		}},
		{"graduated: one event crossing a boundary", []meter{{sum("tokens", "tokens"), []string{graduated}}}, []ev{
			{props: `{"tokens":900}`, said: []string{"tokens 0→900: 0.009"}},
			{props: `{"tokens":200}`, said: []string{"tokens 900→1100: 0.0011"}}, // 100 × 0.00001 + 100 × 0.000001
			{props: `{"tokens":1000000}`, said: []string{"tokens 1100→1001100: 1"}},
		}},
		{"graduated with a flat fee on entering a tier", []meter{{sum("units", "n"), []string{
			`{"model":"graduated","tiers":[{"up_to":"10","unit_price":"1"},{"up_to":null,"unit_price":"0.5","flat_price":"3"}]}`,
		}}}, []ev{
			{props: `{"n":8}`, said: []string{"units 0→8: 8"}},
			{props: `{"n":4}`, said: []string{"units 8→12: 6"}}, // 2 × 1 + 2 × 0.5 + 3
			{props: `{"n":4}`, said: []string{"units 12→16: 2"}},
		}},
		{"free units, then per unit", []meter{{sum("units", "n"), []string{
			`{"model":"per_unit","unit_price":"0.25","free_units":"10"}`,
		}}}, []ev{
			{props: `{"n":6}`, said: []string{"units 0→6: 0"}},
			{props: `{"n":6}`, said: []string{"units 6→12: 0.5"}},
		}},
		{"package: a partial package is charged whole, once", []meter{{sum("units", "n"), []string{
			`{"model":"package","package_size":"100","package_price":"1"}`,
		}}}, []ev{
			{props: `{"n":1}`, said: []string{"units 0→1: 1"}},
			{props: `{"n":99}`, said: []string{"units 1→100: 0"}},
			{props: `{"n":1}`, said: []string{"units 100→101: 1"}},
		}},
		{"volume: crossing into a cheaper tier credits back", []meter{{sum("units", "n"), []string{volume}}}, []ev{
			{props: `{"n":900}`, said: []string{"units 0→900: 9"}},
			{props: `{"n":200}`, said: []string{"units 900→1100: -0.2"}}, // 1,100 × 0.008 = 8.8
			{props: `{"n":100}`, said: []string{"units 1100→1200: 0.8"}},
		}},
		{"max", []meter{{Meter{Code: "seats", Aggregation: Max, Property: "seats"}, []string{price("2")}}}, []ev{
			{props: `{"seats":5}`, said: []string{"seats 0→5: 10"}},
			{props: `{"seats":3}`, said: []string{"seats 5→5: 0"}},
			{props: `{"seats":8}`, said: []string{"seats 5→8: 6"}},
		}},
		{"latest: the latest timestamp wins, whatever the order", []meter{{Meter{Code: "storage", Aggregation: Latest, Property: "gb"}, []string{price("1")}}}, []ev{
			{props: `{"gb":10}`, ago: 2 * time.Minute, said: []string{"storage 0→10: 10"}},
			{props: `{"gb":3}`, ago: 3 * time.Minute, said: []string{"storage 10→10: 0"}}, // older: ignored
			{props: `{"gb":4}`, ago: time.Minute, said: []string{"storage 10→4: -6"}},
			{props: `{"gb":7}`, ago: time.Minute, said: []string{"storage 4→7: 3"}}, // as late: wins
		}},
		{"unique_count: a repeated value charges nothing", []meter{{Meter{Code: "users", Aggregation: UniqueCount, Property: "user"}, []string{price("5")}}}, []ev{
			{props: `{"user":"a"}`, said: []string{"users 0→1: 5"}},
			{props: `{"user":"b"}`, said: []string{"users 1→2: 5"}},
			{props: `{"user":"a"}`, said: []string{"users 2→2: 0"}},
			{props: `{"user":1}`, said: []string{"users 2→3: 5"}},
			{props: `{"user":"1"}`, said: []string{"users 3→3: 0"}}, // the same value as text
		}},
		{"count", []meter{{Meter{Code: "calls", Aggregation: Count}, []string{price("0.1")}}}, []ev{
			{props: `{}`, said: []string{"calls 0→1: 0.1"}},
			{props: `{"anything":1}`, said: []string{"calls 1→2: 0.1"}},
		}},
		{"filters: no match is no_meter", []meter{{Meter{Code: "calls", Aggregation: Count, Filters: map[string][]string{"region": {"eu", "us"}}}, []string{price("1")}}}, []ev{
			{props: `{"region":"asia"}`, reject: CodeNoMeter},
			{props: `{}`, reject: CodeNoMeter},
			{props: `{"region":"EU"}`, reject: CodeNoMeter},
			{props: `{"region":"eu"}`, said: []string{"calls 0→1: 1"}},
			{props: `{"region":"us"}`, said: []string{"calls 1→2: 1"}},
		}},
		{"filters: each meter that matches counts", []meter{
			{Meter{Code: "calls", Aggregation: Count}, []string{price("1")}},
			{Meter{Code: "eu-calls", Aggregation: Count, Filters: map[string][]string{"region": {"eu"}}}, []string{price("0.5")}},
		}, []ev{
			{props: `{"region":"eu"}`, said: []string{"calls 0→1: 1", "eu-calls 0→1: 0.5"}},
			{props: `{"region":"us"}`, said: []string{"calls 1→2: 1"}},
		}},
		{"dimensions select the most specific price, and aggregate apart", []meter{
			{Meter{Code: "tokens", Aggregation: Sum, Property: "n", GroupBy: []string{"model", "token_type"}}, []string{
				`{"model":"per_unit","unit_price":"0.1"}`,
				`{"model":"per_unit","unit_price":"0.4","dimensions":{"token_type":"output"}}`,
				`{"model":"per_unit","unit_price":"0.3","dimensions":{"model":"gpt","token_type":"input"}}`,
				`{"model":"per_unit","unit_price":"0.2","dimensions":{"model":"gpt"}}`,
			}},
		}, []ev{
			{props: `{"n":10,"model":"gpt","token_type":"input"}`, said: []string{`tokens {"model":"gpt","token_type":"input"} 0→10: 3`}},
			{props: `{"n":10,"model":"gpt","token_type":"input"}`, said: []string{`tokens {"model":"gpt","token_type":"input"} 10→20: 3`}},
			// Equally specific: the dimension key that sorts first wins, not
			// the price made first.
			{props: `{"n":10,"model":"gpt","token_type":"output"}`, said: []string{`tokens {"model":"gpt","token_type":"output"} 0→10: 2`}},
			{props: `{"n":10,"model":"other","token_type":"output"}`, said: []string{`tokens {"model":"other","token_type":"output"} 0→10: 4`}},
			{props: `{"n":10,"model":"other","token_type":"input"}`, said: []string{`tokens {"model":"other","token_type":"input"} 0→10: 1`}},
			{props: `{"n":10,"token_type":"input"}`, said: []string{`tokens {"model":"","token_type":"input"} 0→10: 1`}},
		}},
		{"a missing or bad value is invalid_value", []meter{{sum("tokens", "tokens"), []string{price("1")}}}, []ev{
			{props: `{}`, reject: CodeInvalidValue},
			{props: `{"tokens":null}`, reject: CodeInvalidValue},
			{props: `{"tokens":"abc"}`, reject: CodeInvalidValue},
			{props: `{"tokens":true}`, reject: CodeInvalidValue},
			{props: `{"tokens":-1}`, reject: CodeInvalidValue}, // a sum only grows
			{props: `{"tokens":1}`, said: []string{"tokens 0→1: 1"}},
		}},
		{"a missing unique value is invalid_value", []meter{{Meter{Code: "users", Aggregation: UniqueCount, Property: "user"}, []string{price("1")}}}, []ev{
			{props: `{"other":"a"}`, reject: CodeInvalidValue},
		}},
		{"a quantity beyond MaxQuantity is invalid_value", []meter{{sum("tokens", "tokens"), []string{price("0.000001")}}}, []ev{
			{props: `{"tokens":1000000000000000.000000000001}`, reject: CodeInvalidValue},
			{props: `{"tokens":"1000000000000001"}`, reject: CodeInvalidValue},
			{props: `{"tokens":1000000000000000}`, said: []string{"tokens 0→1000000000000000: 1000000000"}},
		}},
		{"a charge beyond MaxOpAmount is limit_exceeded", []meter{{sum("tokens", "tokens"), []string{price("2")}}}, []ev{
			{props: `{"tokens":500000000000000}`, said: []string{"tokens 0→500000000000000: 1000000000000000"}},
			{props: `{"tokens":500000000000000.5}`, reject: CodeLimitExceeded},
			{props: `{"tokens":1}`, said: []string{"tokens 500000000000000→500000000000001: 2"}},
		}},
		{"a credit back beyond MaxOpAmount is limit_exceeded", []meter{{Meter{Code: "storage", Aggregation: Latest, Property: "gb"}, []string{price("2")}}}, []ev{
			{props: `{"gb":500000000000000}`, ago: 3 * time.Minute, said: []string{"storage 0→500000000000000: 1000000000000000"}},
			{props: `{"gb":1000000000000000}`, ago: 2 * time.Minute, said: []string{"storage 500000000000000→1000000000000000: 1000000000000000"}},
			{props: `{"gb":0}`, ago: time.Minute, reject: CodeLimitExceeded},
			{props: `{"gb":499999999999999.5}`, ago: time.Minute, reject: CodeLimitExceeded},
			{props: `{"gb":500000000000000}`, ago: time.Minute, said: []string{"storage 1000000000000000→500000000000000: -1000000000000000"}},
		}},
		{"an unknown customer is unknown_customer", []meter{{sum("tokens", "tokens"), []string{price("1")}}}, []ev{
			{customer: "nobody", props: `{"tokens":1}`, reject: CodeUnknownCustomer},
		}},
		{"a customer with no wallet in the price's asset is no_wallet", []meter{{sum("tokens", "tokens"), []string{price("1")}}}, []ev{
			{customer: "cus-no-wallet", props: `{"tokens":1}`, reject: CodeNoWallet},
		}},
		{"an unpriced meter is counted, not charged", []meter{{sum("tokens", "tokens"), nil}}, []ev{
			{props: `{"tokens":5}`, said: []string{"tokens 0→5: 0 (unpriced)"}},
			{props: `{"tokens":5}`, said: []string{"tokens 5→10: 0 (unpriced)"}},
		}},
		{"an event refused by one meter changes no other", []meter{
			{sum("a", "a"), []string{price("1")}},
			{sum("b", "b"), []string{price("1")}},
		}, []ev{
			{props: `{"a":1,"b":-2}`, reject: CodeInvalidValue},
			{props: `{"a":1,"b":2}`, said: []string{"a 0→1: 1", "b 0→2: 2"}},
		}},
		{"a meter that cannot count the event misses it; the others count it", []meter{
			{sum("a", "a"), []string{price("1")}},
			{sum("b", "b"), []string{price("1")}},
		}, []ev{
			{props: `{"a":1}`, said: []string{"a 0→1: 1"}},
			{props: `{"a":1,"b":"many"}`, said: []string{"a 1→2: 1"}},
			{props: `{"c":1}`, reject: CodeInvalidValue},
			{props: `{"a":1,"b":2}`, said: []string{"a 2→3: 1", "b 0→2: 2"}},
		}},
		{"a refused event's unique value is not seen", []meter{
			{Meter{Code: "users", Aggregation: UniqueCount, Property: "user"}, []string{price("5")}},
			{sum("b", "b"), []string{price("1")}},
		}, []ev{
			{props: `{"user":"a","b":-1}`, reject: CodeInvalidValue},
			{props: `{"user":"a","b":1}`, said: []string{"users 0→1: 5", "b 0→1: 1"}},
			{props: `{"user":"a","b":1}`, said: []string{"users 1→1: 0", "b 1→2: 1"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemMetering(t)
			m.customer("cus-1", "CREDITS")
			m.customer("cus-no-wallet")
			for _, spec := range tc.meters {
				mt := m.meter(spec.m)
				for _, p := range spec.prices {
					m.price(mt, "CREDITS", p)
				}
			}
			for i, e := range tc.events {
				cus := e.customer
				if cus == "" {
					cus = "cus-1"
				}
				calls := len(m.rec.calls)
				res, code := m.send(cus, "api.call", e.props, mt0.Add(-e.ago))
				if code != e.reject {
					t.Fatalf("event %d %s: refusal %q, want %q", i, e.props, code, e.reject)
				}
				var said []string
				for _, c := range res.Charges {
					said = append(said, c.said())
				}
				if !slices.Equal(said, e.said) {
					t.Fatalf("event %d %s:\n\t%s\nwant:\n\t%s", i, e.props, strings.Join(said, "\n\t"), strings.Join(e.said, "\n\t"))
				}
				// The wallet was asked for exactly the priced charges, on
				// the customer's wallet, with the quantity the event added.
				var priced []MeterCharge
				for _, c := range res.Charges {
					if c.WalletID != nil {
						priced = append(priced, c)
					}
				}
				got := m.rec.calls[calls:]
				if len(got) != len(priced) {
					t.Fatalf("event %d %s: %d charges asked of the wallet, want %d", i, e.props, len(got), len(priced))
				}
				for j, c := range priced {
					g := got[j]
					w := m.st.wallets[[2]string{cus, "CREDITS"}].id
					dims := "{}"
					if len(c.Dimensions) > 0 {
						dims = string(c.Dimensions)
					}
					if g.wallet != w || *c.WalletID != w || !g.amount.Equal(c.Amount) || g.line.MeterCode != c.Meter ||
						g.line.DimsKey != dims || !g.line.Quantity.Equal(c.QuantityAfter.Sub(c.QuantityBefore)) {
						t.Fatalf("event %d: wallet %s asked to charge %s on %s %s for %s, result %+v",
							i, g.wallet, g.amount, g.line.MeterCode, g.line.DimsKey, g.line.Quantity, c)
					}
				}
			}
		})
	}
}

// The line a charge goes to if the credits do not cover it: the meter and
// dimensions, the quantity the event added, and the unit price of a
// per-unit price (none for the others, billed at the average price).
func TestUsageLineOfACharge(t *testing.T) {
	m := newMemMetering(t)
	m.customer("cus-1", "CREDITS")
	tokens := m.meter(Meter{Code: "tokens", Aggregation: Sum, Property: "n", GroupBy: []string{"model"}})
	m.price(tokens, "CREDITS", `{"model":"per_unit","unit_price":"0.000002","dimensions":{"model":"big"}}`)
	m.price(tokens, "CREDITS", `{"model":"graduated","tiers":[{"up_to":"1000","unit_price":"0.00001"},{"up_to":null,"unit_price":"0.000001"}]}`)
	for _, tc := range []struct {
		props, dims, qty, unitPrice string
	}{
		{`{"n":1500,"model":"big"}`, `{"model":"big"}`, "1500", "0.000002"},
		{`{"n":900,"model":"small"}`, `{"model":"small"}`, "900", ""},
	} {
		if _, code := m.send("cus-1", "api.call", tc.props, mt0); code != "" {
			t.Fatalf("%s: %s", tc.props, code)
		}
		l := m.rec.calls[len(m.rec.calls)-1].line
		price := ""
		if l.UnitPrice != nil {
			price = l.UnitPrice.String()
		}
		if l.Meter != tokens.ID || l.MeterCode != "tokens" || l.DimsKey != tc.dims || len(l.Dims) != 1 ||
			l.Quantity.String() != tc.qty || price != tc.unitPrice {
			t.Fatalf("%s: line %+v (unit price %q), want %s %s at %q", tc.props, l, price, tc.dims, tc.qty, tc.unitPrice)
		}
	}
}

// A period's running charge per meter stays below 10^26: the event that
// would take it there is refused alone (limit_exceeded).
func TestRunningChargeLimit(t *testing.T) {
	m := newMemMetering(t)
	m.customer("cus-1", "CREDITS")
	mt := m.meter(Meter{Code: "tokens", Aggregation: Sum, Property: "n"})
	m.price(mt, "CREDITS", `{"model":"per_unit","unit_price":"1"}`)
	w := m.st.wallets[[2]string{"cus-1", "CREDITS"}]
	start, _ := wallet.Cycle(w.created, mt0)
	near := ledger.MustAmount("99999999999999999999999999").Sub(ledger.MustAmount("1"))
	m.st.aggs[aggKey{meter: mt.ID, customer: "cus-1", dims: "{}", asset: "CREDITS", period: start}] =
		&aggregate{quantity: near.Decimal(), amount: near.Decimal(), exists: true, seen: map[string]bool{}}
	if res, code := m.send("cus-1", "api.call", `{"n":1}`, mt0); code != "" || res.Charges[0].said() != "tokens 99999999999999999999999998→99999999999999999999999999: 1" {
		t.Fatalf("the last unit below 10^26: %+v %s", res, code)
	}
	if _, code := m.send("cus-1", "api.call", `{"n":1}`, mt0); code != CodeLimitExceeded {
		t.Fatalf("reaching 10^26: %q, want %s", code, CodeLimitExceeded)
	}
}
