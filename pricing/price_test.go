package pricing

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/shopspring/decimal"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func upTo(s string) *decimal.Decimal {
	d := dec(s)
	return &d
}

// The prices of the exactness vectors.
func apiCalls() Price {
	return Price{Model: PerUnit, UnitPrice: dec("0.02"), FreeUnits: dec("1000")}
}

func tokens() Price {
	return Price{Model: Graduated, Tiers: []Tier{
		{UpTo: upTo("1000000"), UnitPrice: dec("0.000003")},   // 3.00 per million
		{UpTo: upTo("10000000"), UnitPrice: dec("0.0000025")}, // 2.50 per million
		{UnitPrice: dec("0.000002")},                          // 2.00 per million
	}}
}

func bulk() Price {
	return Price{Model: Volume, Tiers: []Tier{
		{UpTo: upTo("1000"), UnitPrice: dec("0.01")},
		{UnitPrice: dec("0.008")},
	}}
}

func packs() Price {
	return Price{Model: Package, PackageSize: dec("1000"), PackagePrice: dec("10")}
}

// fixtures returns prices of every model, with and without free units and
// flat prices, with bounds and prices that need many fractional digits.
func fixtures() []Price {
	withFree := func(p Price, free string) Price {
		p.FreeUnits = dec(free)
		return p
	}
	flatGraduated := Price{Model: Graduated, Tiers: []Tier{
		{UpTo: upTo("10"), UnitPrice: dec("0"), FlatPrice: dec("5")},
		{UpTo: upTo("100.5"), UnitPrice: dec("0.333333333333"), FlatPrice: dec("1.25")},
		{UpTo: upTo("1000"), UnitPrice: dec("0.000000000007")},
		{UnitPrice: dec("0.000001"), FlatPrice: dec("0.000000000001")},
	}}
	flatVolume := Price{Model: Volume, Tiers: []Tier{
		{UpTo: upTo("10"), UnitPrice: dec("1"), FlatPrice: dec("2")},
		{UpTo: upTo("100"), UnitPrice: dec("0.777777777777"), FlatPrice: dec("1")},
		{UpTo: upTo("1000.25"), UnitPrice: dec("0.5")},
		{UnitPrice: dec("0.000000000003"), FlatPrice: dec("100")},
	}}
	odd := Price{Model: PerUnit, UnitPrice: dec("0.000000000001")}
	fracPackage := Price{Model: Package, PackageSize: dec("0.75"), PackagePrice: dec("0.333333333333")}
	return []Price{
		apiCalls(), withFree(apiCalls(), "0"), odd, withFree(odd, "0.5"),
		tokens(), withFree(tokens(), "250000.5"), flatGraduated, withFree(flatGraduated, "3"),
		bulk(), withFree(bulk(), "100"), flatVolume, withFree(flatVolume, "9.999999"),
		packs(), withFree(packs(), "1"), fracPackage, withFree(fracPackage, "0.000001"),
	}
}

func TestAmount(t *testing.T) {
	for _, tt := range []struct {
		name  string
		price Price
		q     string
		want  string
	}{
		// The exactness vectors.
		{"api calls: 1,000 free then 0.02", apiCalls(), "2500", "30.00"},
		{"tokens: graduated 3.00/2.50/2.00 per M", tokens(), "12000000", "29.50"},
		{"volume: whole quantity at 0.008", bulk(), "1500", "12.00"},
		{"package: 10.00 per 1,000 calls", packs(), "2500", "30.00"},

		{"zero", tokens(), "0", "0"},
		{"negative prices as zero", apiCalls(), "-5", "0"},
		{"within free units", apiCalls(), "1000", "0"},
		{"just past free units", apiCalls(), "1000.5", "0.01"},
		{"graduated tier bound is inclusive", tokens(), "1000000", "3"},
		{"graduated one past the bound", tokens(), "1000001", "3.0000025"},
		{"graduated second bound", tokens(), "10000000", "25.5"},
		{"volume at the bound", bulk(), "1000", "10"},
		{"volume past the bound is cheaper", bulk(), "1001", "8.008"},
		{"volume fractional", bulk(), "0.5", "0.005"},
		{"package partial rounds up", packs(), "1", "10"},
		{"package exact", packs(), "3000", "30"},
		{"package one over", packs(), "3000.000001", "40"},
		{"fractional package", Price{Model: Package, PackageSize: dec("0.5"), PackagePrice: dec("2")}, "1.2", "6"},
		{"package with free units", Price{Model: Package, PackageSize: dec("100"), PackagePrice: dec("1"), FreeUnits: dec("50")}, "151", "2"},
		{"graduated flat price on first unit", Price{Model: Graduated, Tiers: []Tier{
			{UpTo: upTo("10"), FlatPrice: dec("5")},
			{UnitPrice: dec("1"), FlatPrice: dec("2")},
		}}, "10.5", "7.5"},
		{"graduated flat price not charged at zero", Price{Model: Graduated, Tiers: []Tier{
			{FlatPrice: dec("5")},
		}}, "0", "0"},
		{"volume flat price of the tier reached", Price{Model: Volume, Tiers: []Tier{
			{UpTo: upTo("10"), UnitPrice: dec("1"), FlatPrice: dec("1")},
			{UnitPrice: dec("0.5"), FlatPrice: dec("3")},
		}}, "12", "9"},
		{"graduated free units shift the tiers", Price{Model: Graduated, FreeUnits: dec("100"), Tiers: []Tier{
			{UpTo: upTo("10"), UnitPrice: dec("1")},
			{UnitPrice: dec("2")},
		}}, "120", "30"},

		// Rounding to 12 digits, half up: 0.25e-11 would be 2e-12 half even.
		{"rounds half up", Price{Model: PerUnit, UnitPrice: dec("0.000000000001")}, "2.5", "0.000000000003"},
		{"rounds half up at the smallest unit", Price{Model: PerUnit, UnitPrice: dec("0.000000000001")}, "0.5", "0.000000000001"},
		{"rounds down below half", Price{Model: PerUnit, UnitPrice: dec("0.000000000001")}, "0.499999", "0"},
		{"rounds to 12 digits", Price{Model: PerUnit, UnitPrice: dec("0.333333333333")}, "0.000001", "0.000000333333"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.price.Validate(); err != nil {
				t.Fatalf("fixture invalid: %v", err)
			}
			got := tt.price.Amount(dec(tt.q))
			if got.String() != dec(tt.want).String() {
				t.Errorf("Amount(%s) = %s, want %s", tt.q, got, tt.want)
			}
		})
	}
}

// splits of the tokens vector's 12M tokens into events.
func tokenSplits() map[string][]int64 {
	splits := map[string][]int64{
		"one event":  {12_000_000},
		"12 x 1M":    nil,
		"straddling": {999_999, 2, 8_999_998, 1, 2_000_000},
		"on bounds":  {1_000_000, 9_000_000, 2_000_000},
		"one token":  {1, 11_999_999},
		"odd sizes":  {333_333, 333_333, 333_334, 7_777_777, 3_222_223},
	}
	for range 12 {
		splits["12 x 1M"] = append(splits["12 x 1M"], 1_000_000)
	}
	for seed := range uint64(5) {
		rng := rand.New(rand.NewPCG(seed, 1))
		var s []int64
		left := int64(12_000_000)
		for left > 0 {
			n := min(left, 1+rng.Int64N(700_000))
			s = append(s, n)
			left -= n
		}
		splits[fmt.Sprintf("random %d (%d events)", seed, len(s))] = s
	}
	return splits
}

func TestExactnessVectorsInAnySplit(t *testing.T) {
	for _, v := range []struct {
		name   string
		price  Price
		splits map[string][]int64
		want   string
	}{
		{"api calls", apiCalls(), map[string][]int64{
			"one event":      {2500},
			"one by one":     ones(2500),
			"straddling":     {999, 2, 1499},
			"inside free":    {500, 500, 1500},
			"random lengths": {17, 1200, 3, 880, 400},
		}, "30"},
		{"tokens", tokens(), tokenSplits(), "29.5"},
		{"volume", bulk(), map[string][]int64{
			"one event":  {1500},
			"one by one": ones(1500),
			"straddling": {999, 2, 499},
			"on bound":   {1000, 500},
		}, "12"},
		{"package", packs(), map[string][]int64{
			"one event":  {2500},
			"one by one": ones(2500),
			"packages":   {1000, 1000, 500},
			"straddling": {1, 999, 1, 1499},
		}, "30"},
	} {
		for name, split := range v.splits {
			t.Run(v.name+"/"+name, func(t *testing.T) {
				var q, sum decimal.Decimal
				for _, n := range split {
					next := q.Add(decimal.NewFromInt(n))
					sum = sum.Add(v.price.Marginal(q, next))
					q = next
				}
				if got := v.price.Amount(q); got.String() != v.want {
					t.Fatalf("Amount(%s) = %s, want %s", q, got, v.want)
				}
				if sum.String() != v.want {
					t.Errorf("sum of %d marginal debits = %s, want %s", len(split), sum, v.want)
				}
			})
		}
	}
}

func ones(n int) []int64 {
	s := make([]int64, n)
	for i := range s {
		s[i] = 1
	}
	return s
}

// One million events at 0.000003 each debit exactly 3.
func TestMillionEvents(t *testing.T) {
	p := Price{Model: PerUnit, UnitPrice: dec("0.000003")}
	var sum decimal.Decimal
	q := decimal.Zero
	one := decimal.NewFromInt(1)
	for range 1_000_000 {
		next := q.Add(one)
		sum = sum.Add(p.Marginal(q, next))
		q = next
	}
	if sum.String() != "3" {
		t.Errorf("sum of 1,000,000 debits = %s, want 3", sum)
	}
}

func TestVolumeCrossingCreditsBack(t *testing.T) {
	p := bulk()
	steps := []struct{ q0, q1, want string }{
		{"0", "999", "9.99"},
		{"999", "1001", "-1.982"}, // 1,001 × 0.008 − 999 × 0.01
		{"1001", "1500", "3.992"},
	}
	var sum decimal.Decimal
	for _, s := range steps {
		got := p.Marginal(dec(s.q0), dec(s.q1))
		if got.String() != s.want {
			t.Errorf("Marginal(%s, %s) = %s, want %s", s.q0, s.q1, got, s.want)
		}
		sum = sum.Add(got)
	}
	if sum.String() != "12" {
		t.Errorf("sum of debits = %s, want 12 = Amount(1500)", sum)
	}
	if got := p.Marginal(dec("1000"), dec("1000.000001")); !got.IsNegative() {
		t.Errorf("Marginal across the bound = %s, want negative", got)
	}
}

// randomQuantity returns a positive quantity with up to 13 significant and up
// to 6 fractional digits.
func randomQuantity(rng *rand.Rand) decimal.Decimal {
	digits := rng.IntN(14)
	n := int64(1)
	for range digits {
		n *= 10
	}
	return decimal.New(1+rng.Int64N(n), -int32(rng.IntN(7)))
}

// checkTelescopes debits the events one by one and checks that the debits
// add up to exactly Amount of their total.
func checkTelescopes(t *testing.T, p Price, events []decimal.Decimal) {
	t.Helper()
	var q, sum decimal.Decimal
	for i, e := range events {
		next := q.Add(e)
		m := p.Marginal(q, next)
		if m.Exponent() < -Scale && !m.Equal(m.Truncate(Scale)) {
			t.Fatalf("event %d: Marginal(%s, %s) = %s has more than %d fractional digits", i, q, next, m, Scale)
		}
		if m.IsNegative() && p.Model != Volume && e.IsPositive() {
			t.Fatalf("event %d: Marginal(%s, %s) = %s is negative for model %s", i, q, next, m, p.Model)
		}
		sum = sum.Add(m)
		q = next
	}
	if want := p.Amount(q); !sum.Equal(want) {
		t.Fatalf("price %+v: %d debits add up to %s, Amount(%s) = %s", p, len(events), sum, q, want)
	}
}

func TestMarginalTelescopes(t *testing.T) {
	for i, p := range fixtures() {
		if err := p.Validate(); err != nil {
			t.Fatalf("fixture %d invalid: %v", i, err)
		}
		t.Run(fmt.Sprintf("%d-%s", i, p.Model), func(t *testing.T) {
			for seed := range uint64(20) {
				rng := rand.New(rand.NewPCG(seed, uint64(i)))
				events := make([]decimal.Decimal, 1+rng.IntN(300))
				for j := range events {
					events[j] = randomQuantity(rng)
				}
				checkTelescopes(t, p, events)
			}
		})
	}
}

// FuzzMarginalTelescopes checks the telescoping property for event sequences
// the fuzzer makes up: each 5 bytes of data are an event, a 32-bit mantissa
// and a count of fractional digits (0 to 6).
func FuzzMarginalTelescopes(f *testing.F) {
	f.Add(uint8(0), uint32(0), []byte{0, 0, 0, 1, 0})
	f.Add(uint8(4), uint32(1000), []byte{0, 0x0f, 0x42, 0x3f, 0, 0, 0, 0, 2, 0, 0, 0x89, 0x54, 0x40, 0})
	f.Add(uint8(8), uint32(0), []byte{0, 0, 0x03, 0xe7, 0, 0, 0, 0, 2, 0, 0xff, 0xff, 0xff, 0xff, 6})
	f.Add(uint8(10), uint32(12345), []byte{0, 0, 0x27, 0x10, 3, 0x12, 0x34, 0x56, 0x78, 5})
	f.Add(uint8(14), uint32(7), []byte{0, 0, 0, 3, 1, 0, 0, 0, 7, 1, 0, 0, 0, 1, 6})
	prices := fixtures()
	f.Fuzz(func(t *testing.T, which uint8, free uint32, data []byte) {
		p := prices[int(which)%len(prices)]
		p.FreeUnits = decimal.New(int64(free), -3)
		var events []decimal.Decimal
		for ; len(data) >= 5; data = data[5:] {
			mantissa := int64(binary.BigEndian.Uint32(data))
			events = append(events, decimal.New(mantissa, -int32(data[4]%7)))
		}
		checkTelescopes(t, p, events)
	})
}

func TestAmountPanicsOnUnknownModel(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Amount of an unknown model did not panic")
		}
	}()
	Price{Model: "tiered"}.Amount(dec("1"))
}
