package main

import (
	"testing"

	"github.com/shopspring/decimal"
)

func TestCharge(t *testing.T) {
	price := decimal.RequireFromString(unitPriceStr)
	for _, tc := range []struct {
		tokens int64
		want   string
	}{
		{1, "0.000002"},
		{1000, "0.002"},
		{500, "0.001"},
		{0, "0"},
	} {
		if got := charge(price, tc.tokens); !got.Equal(decimal.RequireFromString(tc.want)) {
			t.Errorf("charge(%d) = %s, want %s", tc.tokens, got, tc.want)
		}
	}
}

func TestExpectationIsExact(t *testing.T) {
	// A million small charges: a float64 sum would drift; decimals must not.
	price := decimal.RequireFromString(unitPriceStr)
	accts := []account{{Customer: "a", Wallet: "wa"}, {Customer: "b", Wallet: "wb"}}
	evs := make([]event, 1_000_000)
	for i := range evs {
		evs[i] = event{Account: i % 2, Tokens: tokensFor(i)}
	}
	x := newExpectation()
	x.addEvents(evs, accts, price)
	// Tokens cycle 1..1000 every 1,000 events; the accounts alternate, so
	// each gets 1,000 cycles of every other value: a gets the odd token
	// counts (1+3+…+999 = 250,000), b the even ones (2+…+1000 = 250,500).
	wantA := price.Mul(decimal.NewFromInt(1000 * 250_000))
	wantB := price.Mul(decimal.NewFromInt(1000 * 250_500))
	if !x.charged["wa"].Equal(wantA) || !x.charged["wb"].Equal(wantB) {
		t.Errorf("charged = %s, %s; want %s, %s", x.charged["wa"], x.charged["wb"], wantA, wantB)
	}
	x.add("wa", decimal.RequireFromString("0.01"))
	if want := wantA.Add(decimal.RequireFromString("0.01")); !x.charged["wa"].Equal(want) {
		t.Errorf("after a debit: %s, want %s", x.charged["wa"], want)
	}
}

func TestBalanceMismatch(t *testing.T) {
	for _, tc := range []struct {
		name              string
		expected          string
		consumed, overage string
		ok                bool
	}{
		{"exact", "1.5", "1.5", "0", true},
		{"trailing zeros are the same number", "1.5", "1.500000000000", "0", true},
		{"split between credits and overage", "10.000002", "10", "0.000002", true},
		{"nothing charged", "0", "0", "0", true},
		{"one millionth short", "1.000002", "1.000001", "0", false},
		{"overage forgotten", "2", "1", "0", false},
		{"not a number", "1", "abc", "0", false},
		{"overage not a number", "1", "1", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := balanceMismatch(decimal.RequireFromString(tc.expected), tc.consumed, tc.overage)
			if (got == "") != tc.ok {
				t.Errorf("balanceMismatch(%s, %q, %q) = %q, want ok=%v", tc.expected, tc.consumed, tc.overage, got, tc.ok)
			}
		})
	}
}

func TestMakeEvents(t *testing.T) {
	a := makeEvents("run-s1", 5000, 100, 1)
	b := makeEvents("run-s1", 5000, 100, 1)
	seen := map[string]bool{}
	used := map[int]bool{}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("event %d differs between two runs with one seed: %+v vs %+v", i, a[i], b[i])
		}
		if seen[a[i].ID] {
			t.Fatalf("duplicate id %s", a[i].ID)
		}
		seen[a[i].ID] = true
		used[a[i].Account] = true
		if a[i].Account < 0 || a[i].Account >= 100 || a[i].Tokens < 1 || a[i].Tokens > 1000 {
			t.Fatalf("event %d out of range: %+v", i, a[i])
		}
	}
	if len(used) != 100 {
		t.Errorf("5,000 events reached %d of 100 accounts", len(used))
	}
	for _, e := range makeEvents("hot", 10, 1, 2) {
		if e.Account != 0 {
			t.Errorf("hot event on account %d", e.Account)
		}
	}
	enc, err := encodeEvent(a[0], "c-00001")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"event_id":"run-s1-0000000","customer_id":"c-00001","event_name":"completion","properties":{"tokens":1}}`
	if string(enc) != want {
		t.Errorf("encoded %s, want %s", enc, want)
	}
}
