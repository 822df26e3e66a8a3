package pricing

import (
	"testing"
)

func TestSelect(t *testing.T) {
	priced := func(unit string, dims map[string]string) Price {
		return Price{Model: PerUnit, UnitPrice: dec(unit), Dimensions: dims}
	}
	catchAll := priced("1", nil)
	gpt4o := priced("2", map[string]string{"model": "gpt-4o"})
	gpt4oInput := priced("3", map[string]string{"model": "gpt-4o", "token_type": "input"})
	input := priced("4", map[string]string{"token_type": "input"})
	region := priced("5", map[string]string{"region": "eu"})

	for _, tt := range []struct {
		name   string
		prices []Price
		dims   map[string]string
		want   string // unit price of the selected price; "" for no match
	}{
		{"catch-all matches no dimensions", []Price{catchAll}, nil, "1"},
		{"catch-all matches any dimensions", []Price{catchAll}, map[string]string{"model": "x"}, "1"},
		{"more specific wins", []Price{catchAll, gpt4o, gpt4oInput}, map[string]string{"model": "gpt-4o", "token_type": "input"}, "3"},
		{"more specific wins in any order", []Price{gpt4oInput, gpt4o, catchAll}, map[string]string{"model": "gpt-4o", "token_type": "input"}, "3"},
		{"falls back to less specific", []Price{catchAll, gpt4o, gpt4oInput}, map[string]string{"model": "gpt-4o", "token_type": "output"}, "2"},
		{"falls back to catch-all", []Price{gpt4oInput, gpt4o, catchAll}, map[string]string{"model": "o3"}, "1"},
		{"extra event dimensions ignored", []Price{gpt4o}, map[string]string{"model": "gpt-4o", "region": "us"}, "2"},
		{"tie goes to the first dimension key", []Price{input, gpt4o}, map[string]string{"model": "gpt-4o", "token_type": "input"}, "2"},
		{"tie independent of order", []Price{gpt4o, input}, map[string]string{"model": "gpt-4o", "token_type": "input"}, "2"},
		{"tie between values of other keys", []Price{region, input}, map[string]string{"region": "eu", "token_type": "input"}, "5"},
		{"duplicates: earlier wins", []Price{gpt4o, priced("9", gpt4o.Dimensions)}, map[string]string{"model": "gpt-4o"}, "2"},
		{"no prices", nil, map[string]string{"model": "gpt-4o"}, ""},
		{"no match: other value", []Price{gpt4o, gpt4oInput}, map[string]string{"model": "o3"}, ""},
		{"no match: missing dimension", []Price{gpt4o}, nil, ""},
		{"no match: values are case-sensitive", []Price{gpt4o}, map[string]string{"model": "GPT-4o"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := Select(tt.prices, tt.dims)
			i := SelectIndex(tt.prices, tt.dims)
			if tt.want == "" {
				if ok || i != -1 {
					t.Errorf("Select = %+v, %v; SelectIndex = %d; want no match", p, ok, i)
				}
				return
			}
			if !ok || p.UnitPrice.String() != tt.want {
				t.Errorf("Select = %+v, %v; want the price of %s", p, ok, tt.want)
			}
			if i < 0 || !tt.prices[i].Equal(p) {
				t.Errorf("SelectIndex = %d, Select = %+v: disagree", i, p)
			}
		})
	}
}

func TestConflicts(t *testing.T) {
	existing := []Price{
		{Model: PerUnit, UnitPrice: dec("1")},
		{Model: PerUnit, UnitPrice: dec("2"), Dimensions: map[string]string{"model": "gpt-4o"}},
		{Model: Volume, Tiers: []Tier{{}}, Dimensions: map[string]string{"model": "gpt-4o", "token_type": "input"}},
	}
	for _, tt := range []struct {
		dims map[string]string
		want bool
	}{
		{nil, true},
		{map[string]string{}, true},
		{map[string]string{"model": "gpt-4o"}, true},
		{map[string]string{"token_type": "input", "model": "gpt-4o"}, true},
		{map[string]string{"model": "o3"}, false},
		{map[string]string{"token_type": "input"}, false},
		{map[string]string{"model": "gpt-4o", "token_type": "output"}, false},
	} {
		p := Price{Model: Package, PackageSize: dec("1"), Dimensions: tt.dims}
		if got := Conflicts(existing, p); got != tt.want {
			t.Errorf("Conflicts(%v) = %v, want %v", tt.dims, got, tt.want)
		}
		if got := Conflicts(nil, p); got {
			t.Errorf("Conflicts(nil, %v) = true", tt.dims)
		}
	}
}

func TestDimensionKey(t *testing.T) {
	for _, tt := range []struct {
		dims map[string]string
		want string
	}{
		{nil, `{}`},
		{map[string]string{}, `{}`},
		{map[string]string{"token_type": "input", "model": "gpt-4o"}, `{"model":"gpt-4o","token_type":"input"}`},
		{map[string]string{"a": `"b","c":"d"`}, `{"a":"\"b\",\"c\":\"d\""}`},
	} {
		if got := (Price{Dimensions: tt.dims}).DimensionKey(); got != tt.want {
			t.Errorf("DimensionKey(%v) = %s, want %s", tt.dims, got, tt.want)
		}
	}
}
