package pricing

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/creditledger/creditledger/fault"
)

func TestUnmarshal(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		want Price
	}{
		{"per unit", `{"model":"per_unit","unit_price":"0.02","free_units":"1000"}`, apiCalls()},
		{"graduated", `{"model":"graduated","tiers":[
			{"up_to":"1000000","unit_price":"0.000003"},
			{"up_to":"10000000","unit_price":"0.0000025"},
			{"up_to":null,"unit_price":"0.000002"}]}`, tokens()},
		{"open tier without up_to", `{"model":"volume","tiers":[
			{"up_to":"1000","unit_price":"0.01"},{"unit_price":"0.008"}]}`, bulk()},
		{"package", `{"model":"package","package_size":"1000","package_price":"10.00"}`, packs()},
		{"flat price and dimensions", `{"model":"volume","tiers":[{"unit_price":"1","flat_price":"2.5"}],
			"dimensions":{"model":"gpt-4o","token_type":"input"}}`,
			Price{Model: Volume, Tiers: []Tier{{UnitPrice: dec("1"), FlatPrice: dec("2.5")}},
				Dimensions: map[string]string{"model": "gpt-4o", "token_type": "input"}}},
		{"nulls read as absent", `{"model":"per_unit","unit_price":"1","tiers":null,"free_units":null,"dimensions":null}`,
			Price{Model: PerUnit, UnitPrice: dec("1")}},
		{"empty dimensions", `{"model":"per_unit","unit_price":"1","dimensions":{}}`, Price{Model: PerUnit, UnitPrice: dec("1")}},
		{"other keys ignored", `{"meter_code":"tokens","asset":"USD","model":"per_unit","unit_price":"1"}`,
			Price{Model: PerUnit, UnitPrice: dec("1")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var p Price
			if err := json.Unmarshal([]byte(tt.in), &p); err != nil {
				t.Fatal(err)
			}
			if !p.Equal(tt.want) {
				t.Errorf("got %+v, want %+v", p, tt.want)
			}
		})
	}
}

func TestUnmarshalNamesTheField(t *testing.T) {
	manyTiers := `{"model":"graduated","tiers":[` + strings.Repeat(`{"unit_price":"1"},`, MaxTiers) + `{"unit_price":"1"}]}`
	for _, tt := range []struct {
		name, in, field string
	}{
		{"not an object", `[]`, "price"},
		{"null", `null`, "price"},
		{"no model", `{"unit_price":"1"}`, "model"},
		{"model not a string", `{"model":1}`, "model"},
		{"unknown model", `{"model":"tiered"}`, "model"},
		{"unit price as number", `{"model":"per_unit","unit_price":0.02}`, "unit_price"},
		{"unit price missing", `{"model":"per_unit"}`, "unit_price"},
		{"unit price with exponent", `{"model":"per_unit","unit_price":"2e-2"}`, "unit_price"},
		{"unit price with plus", `{"model":"per_unit","unit_price":"+1"}`, "unit_price"},
		{"unit price with leading zero", `{"model":"per_unit","unit_price":"01"}`, "unit_price"},
		{"unit price bare point", `{"model":"per_unit","unit_price":"1."}`, "unit_price"},
		{"unit price empty", `{"model":"per_unit","unit_price":""}`, "unit_price"},
		{"unit price as bool", `{"model":"per_unit","unit_price":true}`, "unit_price"},
		{"negative unit price", `{"model":"per_unit","unit_price":"-1"}`, "unit_price"},
		{"unit price on package", `{"model":"package","unit_price":"0","package_size":"1","package_price":"1"}`, "unit_price"},
		{"tiers on per_unit", `{"model":"per_unit","unit_price":"1","tiers":[]}`, "tiers"},
		{"tiers missing", `{"model":"graduated"}`, "tiers"},
		{"tiers empty", `{"model":"volume","tiers":[]}`, "tiers"},
		{"tiers not an array", `{"model":"volume","tiers":{}}`, "tiers"},
		{"too many tiers", manyTiers, "tiers"},
		{"tier not an object", `{"model":"volume","tiers":["1"]}`, "tiers[0]"},
		{"tier up_to as number", `{"model":"volume","tiers":[{"up_to":10,"unit_price":"1"},{"unit_price":"1"}]}`, "tiers[0].up_to"},
		{"tier unit price missing", `{"model":"volume","tiers":[{"up_to":"10","unit_price":"1"},{"flat_price":"1"}]}`, "tiers[1].unit_price"},
		{"tier flat price as number", `{"model":"graduated","tiers":[{"unit_price":"1","flat_price":5}]}`, "tiers[0].flat_price"},
		{"tiers not ascending", `{"model":"graduated","tiers":[{"up_to":"10","unit_price":"1"},{"up_to":"10","unit_price":"1"},{"unit_price":"1"}]}`, "tiers[1].up_to"},
		{"last tier bounded", `{"model":"graduated","tiers":[{"up_to":"10","unit_price":"1"}]}`, "tiers[0].up_to"},
		{"package size missing", `{"model":"package","package_price":"10"}`, "package_size"},
		{"package price missing", `{"model":"package","package_size":"10"}`, "package_price"},
		{"package size zero", `{"model":"package","package_size":"0","package_price":"10"}`, "package_size"},
		{"package size as number", `{"model":"package","package_size":1000,"package_price":"10"}`, "package_size"},
		{"free units as number", `{"model":"per_unit","unit_price":"1","free_units":1000}`, "free_units"},
		{"free units too precise", `{"model":"per_unit","unit_price":"1","free_units":"0.0000000000001"}`, "free_units"},
		{"dimensions not an object", `{"model":"per_unit","unit_price":"1","dimensions":["model"]}`, "dimensions"},
		{"dimension value not a string", `{"model":"per_unit","unit_price":"1","dimensions":{"model":4}}`, "dimensions.model"},
		{"dimension value empty", `{"model":"per_unit","unit_price":"1","dimensions":{"model":""}}`, "dimensions.model"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var p Price
			err := json.Unmarshal([]byte(tt.in), &p)
			var ve *fault.Error
			if !errors.As(err, &ve) {
				t.Fatalf("Unmarshal(%s) = %v, want a *fault.Error for %s", tt.in, err, tt.field)
			}
			if ve.Kind != fault.Invalid || ve.Field != tt.field {
				t.Errorf("error is %v naming field %q, want invalid naming %q (%v)", ve.Kind, ve.Field, tt.field, err)
			}
			if !p.Equal(Price{}) {
				t.Errorf("a failed Unmarshal changed the price to %+v", p)
			}
		})
	}
}

func TestMarshal(t *testing.T) {
	for _, tt := range []struct {
		price Price
		want  string
	}{
		{apiCalls(), `{"model":"per_unit","unit_price":"0.02","free_units":"1000","dimensions":{}}`},
		{bulk(), `{"model":"volume","tiers":[{"up_to":"1000","unit_price":"0.01"},{"up_to":null,"unit_price":"0.008"}],"free_units":"0","dimensions":{}}`},
		{Price{Model: Package, PackageSize: dec("1000.000"), PackagePrice: dec("10.00"), Dimensions: map[string]string{"model": "gpt-4o"}},
			`{"model":"package","package_size":"1000","package_price":"10","free_units":"0","dimensions":{"model":"gpt-4o"}}`},
		{Price{Model: Graduated, Tiers: []Tier{{UnitPrice: dec("0.000000000001"), FlatPrice: dec("5")}}},
			`{"model":"graduated","tiers":[{"up_to":null,"unit_price":"0.000000000001","flat_price":"5"}],"free_units":"0","dimensions":{}}`},
	} {
		b, err := json.Marshal(tt.price)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.want {
			t.Errorf("Marshal(%+v)\n got %s\nwant %s", tt.price, b, tt.want)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for i, p := range fixtures() {
		p.Dimensions = map[string]string{"model": fmt.Sprint("m", i), "token_type": "output"}
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var got Price
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("fixture %d: Unmarshal(%s): %v", i, b, err)
		}
		if !got.Equal(p) {
			t.Errorf("fixture %d: round trip through %s gave %+v", i, b, got)
		}
	}
}

// FuzzPriceJSON checks that decoding never panics and that whatever decodes
// is valid and survives a round trip.
func FuzzPriceJSON(f *testing.F) {
	for _, p := range fixtures() {
		b, _ := json.Marshal(p)
		f.Add(b)
	}
	f.Add([]byte(`{"model":"per_unit","unit_price":0.02}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var p Price
		if json.Unmarshal(data, &p) != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("decoded an invalid price from %s: %v", data, err)
		}
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var q Price
		if err := json.Unmarshal(b, &q); err != nil {
			t.Fatalf("re-decoding %s: %v", b, err)
		}
		if !q.Equal(p) {
			t.Fatalf("round trip through %s changed %+v to %+v", b, p, q)
		}
	})
}
