package ledger

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

// numericArray spells every amount exactly: each element parses back to
// the same decimal, for small and huge coefficients, negative, zero and
// positive exponents.
func TestNumericArrayIsExact(t *testing.T) {
	xs := []Amount{Zero, MustAmount("1"), MustAmount("-1"), MustAmount("0.000000000001"), MustAmount("-0.5"),
		MustAmount("1.50"), MustAmount("99999999999999.999999999999"), MustAmount("-12345678901234567890.123456789012"),
		MaxOpAmount, MaxOpAmount.Neg(), {d: decimal.New(7, 20)}, {d: decimal.New(-3, 2)}, MustAmount("100000000000000000")}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		d := decimal.New(rng.Int64N(1<<62)-1<<61, -int32(rng.IntN(13)))
		xs = append(xs, Amount{d: d})
	}
	lit := numericArray(xs)
	if !strings.HasPrefix(lit, "{") || !strings.HasSuffix(lit, "}") {
		t.Fatalf("not an array literal: %.40s…", lit)
	}
	parts := strings.Split(lit[1:len(lit)-1], ",")
	if len(parts) != len(xs) {
		t.Fatalf("%d elements, want %d", len(parts), len(xs))
	}
	for i, p := range parts {
		got, err := decimal.NewFromString(p)
		if err != nil || !got.Equal(xs[i].d) || strings.ContainsAny(p, "eE") {
			t.Fatalf("element %d: %q for %s (%v)", i, p, xs[i].d, err)
		}
	}
	if got := numericArray(nil); got != "{}" {
		t.Fatalf("empty: %q", got)
	}
}

// The point: amounts become text without an allocation each.
func TestNumericArrayAllocations(t *testing.T) {
	xs := make([]Amount, 1000)
	for i := range xs {
		xs[i] = MustAmount("0.000003")
	}
	if n := testing.AllocsPerRun(20, func() { _ = numericArray(xs) }); n > 2 {
		t.Fatalf("%.0f allocations for 1,000 amounts", n)
	}
}
