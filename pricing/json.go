package pricing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/shopspring/decimal"
)

// The JSON form of a price, as POST /prices takes it:
//
//	{"model": "graduated",
//	 "tiers": [{"up_to": "1000000", "unit_price": "0.000003"},
//	           {"up_to": null, "unit_price": "0.0000025", "flat_price": "1"}],
//	 "free_units": "1000",
//	 "dimensions": {"model": "gpt-4o"}}
//
// Every decimal is a JSON string: a number would pass through a float in
// most clients before it reached us, so it is refused rather than trusted.

// JSONFields returns the keys a price's JSON object may have. UnmarshalJSON
// ignores other keys, so that an API body can carry a price beside fields of
// its own; a handler that refuses unknown keys checks them against these and
// its own.
func JSONFields() []string {
	return []string{"model", "unit_price", "tiers", "package_size", "package_price", "free_units", "dimensions"}
}

type tierJSON struct {
	UpTo      *string `json:"up_to"`
	UnitPrice string  `json:"unit_price"`
	FlatPrice *string `json:"flat_price,omitempty"`
}

type priceJSON struct {
	Model        Model             `json:"model"`
	UnitPrice    *string           `json:"unit_price,omitempty"`
	Tiers        []tierJSON        `json:"tiers,omitempty"`
	PackageSize  *string           `json:"package_size,omitempty"`
	PackagePrice *string           `json:"package_price,omitempty"`
	FreeUnits    string            `json:"free_units"`
	Dimensions   map[string]string `json:"dimensions"`
}

// MarshalJSON writes p with decimals as strings in canonical form (no
// exponent, no trailing zeros). It writes the fields of p's model, free_units
// and dimensions always, and any other field that is set, so that an invalid
// price does not marshal into a different valid one.
func (p Price) MarshalJSON() ([]byte, error) {
	tiered := p.Model == Graduated || p.Model == Volume
	out := priceJSON{
		Model:      p.Model,
		FreeUnits:  p.FreeUnits.String(),
		Dimensions: p.Dimensions,
	}
	if out.Dimensions == nil {
		out.Dimensions = map[string]string{}
	}
	if p.Model == PerUnit || !p.UnitPrice.IsZero() {
		out.UnitPrice = decimalString(p.UnitPrice)
	}
	if p.Model == Package || !p.PackageSize.IsZero() {
		out.PackageSize = decimalString(p.PackageSize)
	}
	if p.Model == Package || !p.PackagePrice.IsZero() {
		out.PackagePrice = decimalString(p.PackagePrice)
	}
	if tiered || len(p.Tiers) > 0 {
		out.Tiers = make([]tierJSON, len(p.Tiers))
		for i, t := range p.Tiers {
			tj := tierJSON{UnitPrice: t.UnitPrice.String()}
			if t.UpTo != nil {
				tj.UpTo = decimalString(*t.UpTo)
			}
			if !t.FlatPrice.IsZero() {
				tj.FlatPrice = decimalString(t.FlatPrice)
			}
			out.Tiers[i] = tj
		}
	}
	return json.Marshal(out)
}

func decimalString(d decimal.Decimal) *string {
	s := d.String()
	return &s
}

// UnmarshalJSON reads a price from its JSON object and validates it, so a
// decoded price is always usable. Every error is a *fault.Error (kind fault.Invalid) naming
// the field: a decimal given as a number or in another spelling than a plain
// decimal string ("0.02"; no exponent, no "+", no leading zeros), a field the
// model requires but is missing (unit_price of per_unit, each tier's
// unit_price, package_size and package_price of package), a field the model
// does not use, or anything Validate refuses. JSON null counts as absent,
// except for the whole price, which must be an object.
func (p *Price) UnmarshalJSON(data []byte) error {
	obj, err := object("price", data)
	if err != nil {
		return err
	}
	var q Price
	model, ok := obj["model"]
	if !ok {
		return invalid("model", "required")
	}
	var m string
	if err := json.Unmarshal(model, &m); err != nil {
		return invalid("model", "must be a string")
	}
	q.Model = Model(m)
	if err := q.checkModel(); err != nil {
		return err
	}

	// need says whether the model requires (true) or forbids (false) a field.
	field := func(name string, need bool) (json.RawMessage, error) {
		raw, ok := obj[name]
		switch {
		case need && !ok:
			return nil, invalid(name, "required for model %s", q.Model)
		case !need && ok:
			return nil, unused(name, q.Model)
		}
		return raw, nil
	}
	tiered := q.Model == Graduated || q.Model == Volume

	raw, err := field("unit_price", q.Model == PerUnit)
	if err != nil {
		return err
	}
	if raw != nil {
		if q.UnitPrice, err = parseDecimal("unit_price", raw); err != nil {
			return err
		}
	}
	if raw, err = field("tiers", tiered); err != nil {
		return err
	}
	if raw != nil {
		if q.Tiers, err = parseTiers(raw); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		dst  *decimal.Decimal
	}{
		{"package_size", &q.PackageSize},
		{"package_price", &q.PackagePrice},
	} {
		if raw, err = field(f.name, q.Model == Package); err != nil {
			return err
		}
		if raw != nil {
			if *f.dst, err = parseDecimal(f.name, raw); err != nil {
				return err
			}
		}
	}
	if raw, ok := obj["free_units"]; ok {
		if q.FreeUnits, err = parseDecimal("free_units", raw); err != nil {
			return err
		}
	}
	if raw, ok := obj["dimensions"]; ok {
		if q.Dimensions, err = parseDimensions(raw); err != nil {
			return err
		}
	}
	if err := q.Validate(); err != nil {
		return err
	}
	*p = q
	return nil
}

// object decodes a JSON object into its members, leaving out null ones so
// that null reads as absent. Keys match exactly, unlike encoding/json's
// case-insensitive matching of struct fields.
func object(field string, data []byte) (map[string]json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
		return nil, invalid(field, "must be a JSON object")
	}
	for k, v := range obj {
		if isNull(v) {
			delete(obj, k)
		}
	}
	return obj, nil
}

func isNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

func parseTiers(raw json.RawMessage) ([]Tier, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, invalid("tiers", "must be a JSON array")
	}
	if len(elems) > MaxTiers {
		return nil, invalid("tiers", "%d tiers; at most %d are allowed", len(elems), MaxTiers)
	}
	tiers := make([]Tier, len(elems))
	for i, e := range elems {
		name := fmt.Sprintf("tiers[%d]", i)
		obj, err := object(name, e)
		if err != nil {
			return nil, err
		}
		t := &tiers[i]
		if raw, ok := obj["up_to"]; ok {
			d, err := parseDecimal(name+".up_to", raw)
			if err != nil {
				return nil, err
			}
			t.UpTo = &d
		}
		raw, ok := obj["unit_price"]
		if !ok {
			return nil, invalid(name+".unit_price", "required")
		}
		if t.UnitPrice, err = parseDecimal(name+".unit_price", raw); err != nil {
			return nil, err
		}
		if raw, ok := obj["flat_price"]; ok {
			if t.FlatPrice, err = parseDecimal(name+".flat_price", raw); err != nil {
				return nil, err
			}
		}
	}
	return tiers, nil
}

func parseDimensions(raw json.RawMessage) (map[string]string, error) {
	obj, err := object("dimensions", raw)
	if err != nil {
		return nil, err
	}
	if len(obj) == 0 {
		return nil, nil
	}
	dims := make(map[string]string, len(obj))
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		v := obj[k]
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, invalid("dimensions."+k, "must be a string")
		}
		dims[k] = s
	}
	return dims, nil
}

// parseDecimal reads a decimal that must be a JSON string holding a plain
// decimal: an optional minus, digits without leading zeros, an optional
// fraction. One spelling per value keeps stored prices comparable; the sign
// is accepted here only so that Validate can say "must not be negative".
func parseDecimal(field string, raw json.RawMessage) (decimal.Decimal, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '"' {
		if len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
			return decimal.Decimal{}, invalid(field, "must be a string such as \"0.02\", not a JSON number")
		}
		return decimal.Decimal{}, invalid(field, "must be a decimal string such as \"0.02\"")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return decimal.Decimal{}, invalid(field, "must be a decimal string such as \"0.02\"")
	}
	if !plainDecimal(s) {
		return decimal.Decimal{}, invalid(field, "%q is not a plain decimal such as \"0.02\"", truncate(s, 40))
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return decimal.Decimal{}, invalid(field, "%q is not a plain decimal such as \"0.02\"", truncate(s, 40))
	}
	return d, nil
}

// plainDecimal reports whether s matches -?(0|[1-9][0-9]*)(\.[0-9]+)?, the
// ledger's spelling of amounts, within a length that NUMERIC(38,12) and a
// sign and point could need.
func plainDecimal(s string) bool {
	if len(s) == 0 || len(s) > 80 {
		return false
	}
	i := 0
	if s[0] == '-' {
		i++
	}
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	switch {
	case i == start:
		return false // no integer digits
	case s[start] == '0' && i-start > 1:
		return false // leading zero
	case i == len(s):
		return true
	case s[i] != '.':
		return false
	}
	i++
	frac := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i > frac && i == len(s)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
