package pricing

import (
	"encoding/json"
	"maps"
)

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
