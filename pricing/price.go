package pricing

import (
	"encoding/json"
	"fmt"
	"maps"

	"github.com/shopspring/decimal"
)

// Scale is the number of fractional digits Amount rounds to. It equals the
// ledger's scale (ledger.Scale), so every amount and every marginal debit
// can be posted as is; it is repeated here because this package does not
// import the ledger.
const Scale = 12

// MaxIntegerDigits bounds the integer part of every decimal in a price, as
// NUMERIC(38,12) does where prices are stored.
const MaxIntegerDigits = 38 - Scale

// MaxTiers is the most tiers a graduated or volume price may have.
const MaxTiers = 20

// MaxDimensions is the most dimensions a price may be restricted by.
const MaxDimensions = 16

// A Model names the rule by which a price turns a quantity into an amount.
type Model string

// The price models. Their rules follow the conventions of Stripe, Orb and
// OpenMeter; see Price.Amount.
const (
	PerUnit   Model = "per_unit"
	Graduated Model = "graduated"
	Volume    Model = "volume"
	Package   Model = "package"
)

func (m Model) valid() bool {
	switch m {
	case PerUnit, Graduated, Volume, Package:
		return true
	}
	return false
}

// A Tier is one band of a graduated or volume price. It covers the billable
// quantities above the previous tier's UpTo (or 0) up to and including its
// own UpTo. Only the last tier is open-ended, with a nil UpTo.
type Tier struct {
	UpTo      *decimal.Decimal // inclusive upper bound; nil means no bound
	UnitPrice decimal.Decimal  // per unit within the tier (graduated) or of the whole quantity (volume)
	FlatPrice decimal.Decimal  // charged once when the quantity reaches into the tier
}

// A Price is a price model with its parameters. Only the fields of its
// Model are used; Validate refuses a price that sets the others, so that a
// misplaced field is an error rather than silently ignored.
//
// A zero UnitPrice or PackagePrice is valid and means free: a meter may
// count usage without charging for it. In JSON these fields are required,
// so that forgetting one is not mistaken for a free price.
type Price struct {
	Model        Model
	UnitPrice    decimal.Decimal // per_unit
	Tiers        []Tier          // graduated, volume
	PackageSize  decimal.Decimal // package
	PackagePrice decimal.Decimal // package

	// FreeUnits is the allowance of every model: the first FreeUnits of each
	// billing period cost nothing. Tier bounds and packages count the billable
	// units that remain after it.
	FreeUnits decimal.Decimal

	// Dimensions restricts the price to events with these values, such as
	// {"model": "gpt-4o", "token_type": "input"}. Empty matches every event.
	Dimensions map[string]string
}

// Amount returns the total charge for the cumulative quantity q used in a
// billing period, rounded to Scale fractional digits, half up.
//
// The free allowance is taken first: the billable quantity is
// b = max(0, q − FreeUnits), so a negative q also prices as zero. Then:
//
//   - per_unit: b × UnitPrice.
//   - graduated: each tier prices the units of b that fall in it at its own
//     UnitPrice, and adds its FlatPrice once as soon as any unit falls in it.
//   - volume: all of b is priced at the UnitPrice of the one tier b falls in,
//     plus that tier's FlatPrice; b = 0 costs nothing. Crossing into a
//     cheaper tier can lower the total.
//   - package: ⌈b / PackageSize⌉ × PackagePrice; a partial package is charged
//     whole.
//
// In every model Amount(0) is 0, so an unused period costs nothing and the
// first event's debit is its whole Amount.
//
// Why round half up, and only here: amounts are never negative, and half up
// is what PostgreSQL's round(numeric) does, so a total recomputed in SQL
// agrees with this one. Half even exists to cancel the bias of rounding many
// values one by one; Marginal never rounds an event on its own, so there is
// no such bias to cancel.
//
// Amount assumes p is valid (see Validate) and panics if p.Model is unknown,
// since no amount, zero included, would be right for it.
func (p Price) Amount(q decimal.Decimal) decimal.Decimal {
	b := q.Sub(p.FreeUnits)
	if b.Sign() <= 0 {
		return decimal.Zero
	}
	var a decimal.Decimal
	switch p.Model {
	case PerUnit:
		a = b.Mul(p.UnitPrice)
	case Graduated:
		a = graduated(p.Tiers, b)
	case Volume:
		a = volume(p.Tiers, b)
	case Package:
		a = packages(b, p.PackageSize).Mul(p.PackagePrice)
	default:
		panic(fmt.Sprintf("pricing: Amount of unknown model %q", p.Model))
	}
	return a.Round(Scale)
}

// Marginal returns the charge for moving the period's cumulative quantity
// from q0 to q1: Amount(q1) − Amount(q0). It is what an event is debited.
//
// It is negative when the total goes down: under a volume price whose total
// crosses into a cheaper tier, or when q1 < q0. The caller posts that as a
// credit back.
//
// Since both terms are rounded totals, debits telescope: for any quantities
// 0 = q0, q1, …, qn the sum of Marginal(q[i−1], q[i]) is exactly Amount(qn).
func (p Price) Marginal(q0, q1 decimal.Decimal) decimal.Decimal {
	return p.Amount(q1).Sub(p.Amount(q0))
}

// graduated prices b > 0 tier by tier.
func graduated(tiers []Tier, b decimal.Decimal) decimal.Decimal {
	var a, lower decimal.Decimal
	for _, t := range tiers {
		if b.Cmp(lower) <= 0 {
			break
		}
		upper := b
		if t.UpTo != nil && t.UpTo.Cmp(b) < 0 {
			upper = *t.UpTo
		}
		a = a.Add(upper.Sub(lower).Mul(t.UnitPrice)).Add(t.FlatPrice)
		if t.UpTo == nil {
			break
		}
		lower = *t.UpTo
	}
	return a
}

// volume prices all of b > 0 at the tier it falls in.
func volume(tiers []Tier, b decimal.Decimal) decimal.Decimal {
	for _, t := range tiers {
		if t.UpTo == nil || b.Cmp(*t.UpTo) <= 0 {
			return b.Mul(t.UnitPrice).Add(t.FlatPrice)
		}
	}
	// Unreachable for a valid price, whose last tier is open.
	return decimal.Zero
}

// packages returns ⌈b / size⌉ for b > 0, exactly: the integer quotient and
// remainder are computed without the rounding a decimal division would do.
func packages(b, size decimal.Decimal) decimal.Decimal {
	if size.Sign() <= 0 {
		return decimal.Zero // invalid price; Validate refuses it
	}
	n, r := b.QuoRem(size, 0)
	if r.Sign() != 0 {
		n = n.Add(decimal.NewFromInt(1))
	}
	return n
}

// Equal reports whether p and q are the same price: same model, equal
// decimals and the same dimensions. Fields the model does not use are
// compared too.
func (p Price) Equal(q Price) bool {
	if p.Model != q.Model ||
		!p.UnitPrice.Equal(q.UnitPrice) ||
		!p.PackageSize.Equal(q.PackageSize) ||
		!p.PackagePrice.Equal(q.PackagePrice) ||
		!p.FreeUnits.Equal(q.FreeUnits) ||
		len(p.Tiers) != len(q.Tiers) ||
		!sameDimensions(p.Dimensions, q.Dimensions) {
		return false
	}
	for i, t := range p.Tiers {
		u := q.Tiers[i]
		if (t.UpTo == nil) != (u.UpTo == nil) ||
			t.UpTo != nil && !t.UpTo.Equal(*u.UpTo) ||
			!t.UnitPrice.Equal(u.UnitPrice) ||
			!t.FlatPrice.Equal(u.FlatPrice) {
			return false
		}
	}
	return true
}

// Matches reports whether p applies to an event with the dimension values
// dims: every dimension of p is present in dims with the same value. Values
// compare as exact strings; the caller renders event properties (numbers,
// booleans) to strings before selecting.
func (p Price) Matches(dims map[string]string) bool {
	for k, v := range p.Dimensions {
		if got, ok := dims[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Select returns the price among prices that applies to an event with the
// dimension values dims, and false if none matches. See SelectIndex for the
// rule.
func Select(prices []Price, dims map[string]string) (Price, bool) {
	i := SelectIndex(prices, dims)
	if i < 0 {
		return Price{}, false
	}
	return prices[i], true
}

// SelectIndex returns the index of the price among prices that applies to an
// event with the dimension values dims, or -1 if none matches. It is Select
// for callers that keep other data (an id, a meter) beside each price.
//
// Among the matching prices the most specific, the one with the most
// dimensions, wins: {"model": "gpt-4o", "token_type": "input"} beats
// {"model": "gpt-4o"}, which beats the catch-all {}. Between equally
// specific matches, such as {"model": "gpt-4o"} and {"token_type": "input"}
// for an event that has both, the one whose DimensionKey sorts first wins.
// That is arbitrary but does not depend on the order of prices, so an event
// replayed against the same prices loaded in another order is priced the
// same. Only duplicates, which Conflicts exists to refuse, fall back to the
// earlier index.
func SelectIndex(prices []Price, dims map[string]string) int {
	best, bestKey := -1, ""
	for i, p := range prices {
		if !p.Matches(dims) {
			continue
		}
		if best < 0 {
			best, bestKey = i, p.DimensionKey()
			continue
		}
		n, m := len(p.Dimensions), len(prices[best].Dimensions)
		if n < m {
			continue
		}
		key := p.DimensionKey()
		if n > m || key < bestKey {
			best, bestKey = i, key
		}
	}
	return best
}

// Conflicts reports whether p has the same dimension set (the same keys with
// the same values) as one of existing, the prices already on the same meter.
// Creating p would then make the choice between the two undefined, so it
// should be refused. Prices with different dimension sets never conflict,
// even when some event matches both: Select decides between them.
func Conflicts(existing []Price, p Price) bool {
	for _, e := range existing {
		if sameDimensions(e.Dimensions, p.Dimensions) {
			return true
		}
	}
	return false
}

// DimensionKey returns a canonical spelling of p's dimension set: a JSON
// object with keys sorted, "{}" for none. Two valid prices have the same key
// if and only if they have the same dimensions, so a store can enforce
// Conflicts with a unique index on (meter, DimensionKey).
func (p Price) DimensionKey() string {
	if len(p.Dimensions) == 0 {
		return "{}"
	}
	// encoding/json sorts map keys and escapes strings canonically.
	b, err := json.Marshal(p.Dimensions)
	if err != nil {
		panic("pricing: marshal dimensions: " + err.Error()) // cannot happen for map[string]string
	}
	return string(b)
}

func sameDimensions(a, b map[string]string) bool {
	return maps.Equal(a, b) // nil and empty are the same set
}
