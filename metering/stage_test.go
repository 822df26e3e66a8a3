package metering

import (
	"testing"

	"github.com/google/uuid"
)

// A price spec is parsed once per id; a row whose spec differs from the one
// cached (it never should: prices are immutable) is parsed again rather
// than served stale, and a bad spec is an error, never cached.
func TestSpecCache(t *testing.T) {
	var c specs
	id := uuid.New()
	one := []byte(`{"model":"per_unit","unit_price":"0.5"}`)
	p, err := c.parse(id, one)
	if err != nil || p.UnitPrice.String() != "0.5" {
		t.Fatalf("parse: %v %v", p.UnitPrice, err)
	}
	one[len(one)-3] = '7' // the caller's buffer is reused by the driver
	if p, _ := c.parse(id, []byte(`{"model":"per_unit","unit_price":"0.5"}`)); p.UnitPrice.String() != "0.5" {
		t.Fatalf("cached price changed with the caller's buffer: %v", p.UnitPrice)
	}
	if p, _ := c.parse(id, []byte(`{"model":"per_unit","unit_price":"0.25"}`)); p.UnitPrice.String() != "0.25" {
		t.Fatalf("a changed spec served stale: %v", p.UnitPrice)
	}
	if _, err := c.parse(uuid.New(), []byte(`{"model":"per_unit"}`)); err == nil {
		t.Fatal("a spec without its unit price parsed")
	}
	for i := 0; i < maxSpecs+1; i++ {
		if _, err := c.parse(uuid.New(), []byte(`{"model":"per_unit","unit_price":"1"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.m); n > maxSpecs {
		t.Fatalf("cache holds %d specs, more than %d", n, maxSpecs)
	}
}
