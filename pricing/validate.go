package pricing

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/text"
)

// invalid is the error of a price with a wrong field: a *fault.Error of
// kind fault.Invalid whose Field is the JSON name, with a path for nested
// fields ("tiers[2].up_to", "dimensions.model"), so the API answers 422
// naming it like any other invalid input.
func invalid(field, format string, args ...any) error {
	return &fault.Error{Kind: fault.Invalid, Field: field, Detail: fmt.Sprintf(format, args...)}
}

// Limits on dimension keys and values, in bytes.
const (
	maxDimensionKey   = 64
	maxDimensionValue = 256
)

// Validate reports the first problem with p, as a *fault.Error naming
// the field, or nil if p can be used.
//
// Every decimal must be non-negative and fit NUMERIC(38,12): at most Scale
// fractional and MaxIntegerDigits integer digits. Besides:
//
//   - Model is one of the four models, and the fields of the other models
//     are unset.
//   - graduated and volume have 1 to MaxTiers tiers whose UpTo strictly
//     ascend from above zero; the last tier, and only it, is open (nil UpTo),
//     so that every quantity falls in some tier.
//   - package has PackageSize > 0. A fractional size is allowed: meters sum
//     fractional quantities (GB, hours), a package of 0.5 GB is a real price,
//     and the count of packages is computed exactly whatever the size.
//   - Dimensions has at most MaxDimensions entries, with non-empty keys and
//     values of bounded length in UTF-8 without control characters (a NUL
//     could not be stored). An empty value is refused because it could not
//     be told from a missing property.
func (p Price) Validate() error {
	if err := p.checkModel(); err != nil {
		return err
	}
	tiered := p.Model == Graduated || p.Model == Volume
	if p.Model != PerUnit && !p.UnitPrice.IsZero() {
		return unused("unit_price", p.Model)
	}
	if !tiered && len(p.Tiers) > 0 {
		return unused("tiers", p.Model)
	}
	if p.Model != Package {
		if !p.PackageSize.IsZero() {
			return unused("package_size", p.Model)
		}
		if !p.PackagePrice.IsZero() {
			return unused("package_price", p.Model)
		}
	}
	switch {
	case p.Model == PerUnit:
		if err := checkDecimal("unit_price", p.UnitPrice); err != nil {
			return err
		}
	case tiered:
		if err := checkTiers(p.Tiers); err != nil {
			return err
		}
	case p.Model == Package:
		if err := checkDecimal("package_size", p.PackageSize); err != nil {
			return err
		}
		if p.PackageSize.IsZero() {
			return invalid("package_size", "must be greater than 0")
		}
		if err := checkDecimal("package_price", p.PackagePrice); err != nil {
			return err
		}
	}
	if err := checkDecimal("free_units", p.FreeUnits); err != nil {
		return err
	}
	return checkDimensions(p.Dimensions)
}

func (p Price) checkModel() error {
	if p.Model == "" {
		return invalid("model", "required")
	}
	if !p.Model.valid() {
		return invalid("model", "unknown model %q; want %q, %q, %q or %q", p.Model, PerUnit, Graduated, Volume, Package)
	}
	return nil
}

func unused(field string, m Model) error {
	return invalid(field, "not used by model %s", m)
}

func checkTiers(tiers []Tier) error {
	if len(tiers) == 0 {
		return invalid("tiers", "at least one tier is required")
	}
	if len(tiers) > MaxTiers {
		return invalid("tiers", "%d tiers; at most %d are allowed", len(tiers), MaxTiers)
	}
	var prev decimal.Decimal
	for i, t := range tiers {
		field := fmt.Sprintf("tiers[%d]", i)
		last := i == len(tiers)-1
		switch {
		case t.UpTo == nil && !last:
			return invalid(field+".up_to", "only the last tier may be open (null)")
		case t.UpTo != nil && last:
			return invalid(field+".up_to", "the last tier must be open (null) so that every quantity has a price")
		case t.UpTo != nil:
			if err := checkDecimal(field+".up_to", *t.UpTo); err != nil {
				return err
			}
			if t.UpTo.Cmp(prev) <= 0 {
				if i == 0 {
					return invalid(field+".up_to", "must be greater than 0")
				}
				return invalid(field+".up_to", "must be greater than the previous tier's up_to (%s)", prev)
			}
			prev = *t.UpTo
		}
		if err := checkDecimal(field+".unit_price", t.UnitPrice); err != nil {
			return err
		}
		if err := checkDecimal(field+".flat_price", t.FlatPrice); err != nil {
			return err
		}
	}
	return nil
}

// checkDecimal refuses negative values and values NUMERIC(38,12) cannot
// hold exactly, so that a stored price is the price that was validated.
func checkDecimal(field string, d decimal.Decimal) error {
	if d.Sign() < 0 {
		return invalid(field, "must not be negative")
	}
	if d.Exponent() < -Scale && !d.Equal(d.Truncate(Scale)) {
		return invalid(field, "more than %d fractional digits", Scale)
	}
	if len(d.Truncate(0).String()) > MaxIntegerDigits {
		return invalid(field, "more than %d integer digits", MaxIntegerDigits)
	}
	return nil
}

func checkDimensions(dims map[string]string) error {
	if len(dims) > MaxDimensions {
		return invalid("dimensions", "%d dimensions; at most %d are allowed", len(dims), MaxDimensions)
	}
	// Sorted, so that the first problem reported is always the same one.
	for _, k := range slices.Sorted(maps.Keys(dims)) {
		v := dims[k]
		field := "dimensions." + k
		switch {
		case k == "":
			return invalid("dimensions", "empty key")
		case len(k) > maxDimensionKey:
			return invalid("dimensions", "key longer than %d bytes", maxDimensionKey)
		case !utf8.ValidString(k):
			return invalid("dimensions", "key is not valid UTF-8")
		case text.Check(field, k, maxDimensionKey) != nil:
			// Stored in JSONB, where PostgreSQL refuses a NUL.
			return invalid("dimensions", "key %q has a control character", k)
		case v == "":
			return invalid(field, "must not be empty")
		case len(v) > maxDimensionValue || !utf8.ValidString(v):
			return invalid(field, "must be valid UTF-8 of at most %d bytes", maxDimensionValue)
		}
		var te *text.Error
		if errors.As(text.Check(field, v, maxDimensionValue), &te) {
			return invalid(field, "%s", te.Detail)
		}
	}
	return nil
}
