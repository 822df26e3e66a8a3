package pricing

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/creditledger/creditledger/fault"
)

func TestValidateAcceptsFixtures(t *testing.T) {
	prices := append(fixtures(),
		Price{Model: PerUnit},                            // free meter
		Price{Model: Graduated, Tiers: []Tier{{}}},       // one open tier
		Price{Model: Package, PackageSize: dec("0.001")}, // fractional, free
		Price{Model: PerUnit, UnitPrice: dec("0.000000000001"), Dimensions: map[string]string{"model": "gpt-4o", "token_type": "input"}},
		Price{Model: PerUnit, UnitPrice: dec("99999999999999999999999999.999999999999")},
		Price{Model: PerUnit, UnitPrice: dec("1.500000000000000")}, // trailing zeros past the scale
	)
	for i, p := range prices {
		if err := p.Validate(); err != nil {
			t.Errorf("price %d: %v", i, err)
		}
	}
}

func TestValidateNamesTheField(t *testing.T) {
	tiers := func(ts ...Tier) Price { return Price{Model: Graduated, Tiers: ts} }
	many := make([]Tier, MaxTiers+1)
	for i := range many[:MaxTiers] {
		many[i].UpTo = upTo(fmt.Sprint(i + 1))
	}
	manyDims := map[string]string{}
	for i := range MaxDimensions + 1 {
		manyDims[fmt.Sprint("k", i)] = "v"
	}
	for _, tt := range []struct {
		name  string
		price Price
		field string
	}{
		{"no model", Price{UnitPrice: dec("1")}, "model"},
		{"unknown model", Price{Model: "tiered"}, "model"},
		{"negative unit price", Price{Model: PerUnit, UnitPrice: dec("-0.01")}, "unit_price"},
		{"too many fractional digits", Price{Model: PerUnit, UnitPrice: dec("0.0000000000001")}, "unit_price"},
		{"too many integer digits", Price{Model: PerUnit, UnitPrice: dec("100000000000000000000000000")}, "unit_price"},
		{"unit price on graduated", Price{Model: Graduated, UnitPrice: dec("1"), Tiers: []Tier{{}}}, "unit_price"},
		{"tiers on per_unit", Price{Model: PerUnit, Tiers: []Tier{{}}}, "tiers"},
		{"package size on volume", Price{Model: Volume, Tiers: []Tier{{}}, PackageSize: dec("1")}, "package_size"},
		{"package price on per_unit", Price{Model: PerUnit, PackagePrice: dec("1")}, "package_price"},
		{"no tiers", Price{Model: Volume}, "tiers"},
		{"too many tiers", tiers(many...), "tiers"},
		{"first bound zero", tiers(Tier{UpTo: upTo("0")}, Tier{}), "tiers[0].up_to"},
		{"bounds not ascending", tiers(Tier{UpTo: upTo("10")}, Tier{UpTo: upTo("5")}, Tier{}), "tiers[1].up_to"},
		{"equal bounds", tiers(Tier{UpTo: upTo("10")}, Tier{UpTo: upTo("10")}, Tier{}), "tiers[1].up_to"},
		{"open tier not last", tiers(Tier{}, Tier{UpTo: upTo("10")}), "tiers[0].up_to"},
		{"last tier bounded", tiers(Tier{UpTo: upTo("10")}, Tier{UpTo: upTo("20")}), "tiers[1].up_to"},
		{"negative bound", tiers(Tier{UpTo: upTo("-1")}, Tier{}), "tiers[0].up_to"},
		{"negative tier price", tiers(Tier{UpTo: upTo("1")}, Tier{UnitPrice: dec("-1")}), "tiers[1].unit_price"},
		{"negative flat price", tiers(Tier{FlatPrice: dec("-1")}), "tiers[0].flat_price"},
		{"flat price too precise", tiers(Tier{FlatPrice: dec("0.1234567890123")}), "tiers[0].flat_price"},
		{"zero package size", Price{Model: Package, PackagePrice: dec("10")}, "package_size"},
		{"negative package size", Price{Model: Package, PackageSize: dec("-1"), PackagePrice: dec("10")}, "package_size"},
		{"negative package price", Price{Model: Package, PackageSize: dec("1"), PackagePrice: dec("-10")}, "package_price"},
		{"negative free units", Price{Model: PerUnit, FreeUnits: dec("-1")}, "free_units"},
		{"free units too precise", Price{Model: PerUnit, FreeUnits: dec("0.0000000000001")}, "free_units"},
		{"empty dimension key", Price{Model: PerUnit, Dimensions: map[string]string{"": "x"}}, "dimensions"},
		{"long dimension key", Price{Model: PerUnit, Dimensions: map[string]string{strings.Repeat("k", 65): "x"}}, "dimensions"},
		{"empty dimension value", Price{Model: PerUnit, Dimensions: map[string]string{"model": ""}}, "dimensions.model"},
		{"long dimension value", Price{Model: PerUnit, Dimensions: map[string]string{"model": strings.Repeat("v", 257)}}, "dimensions.model"},
		{"invalid UTF-8 value", Price{Model: PerUnit, Dimensions: map[string]string{"model": "\xff"}}, "dimensions.model"},
		{"NUL in a value", Price{Model: PerUnit, Dimensions: map[string]string{"model": "gpt\x00"}}, "dimensions.model"},
		{"control character in a value", Price{Model: PerUnit, Dimensions: map[string]string{"model": "gpt\x1b"}}, "dimensions.model"},
		{"NUL in a key", Price{Model: PerUnit, Dimensions: map[string]string{"mo\x00del": "gpt"}}, "dimensions"},
		{"invalid UTF-8 key", Price{Model: PerUnit, Dimensions: map[string]string{"\xffmodel": "gpt"}}, "dimensions"},
		{"too many dimensions", Price{Model: PerUnit, Dimensions: manyDims}, "dimensions"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.price.Validate()
			var ve *fault.Error
			if !errors.As(err, &ve) {
				t.Fatalf("Validate() = %v, want a *fault.Error for %s", err, tt.field)
			}
			if ve.Kind != fault.Invalid || ve.Field != tt.field {
				t.Errorf("error is %v naming field %q, want invalid naming %q (%v)", ve.Kind, ve.Field, tt.field, err)
			}
		})
	}
}
