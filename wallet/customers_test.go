package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/fault"
)

// Customers are listed newest first, in pages, filtered by a
// case-insensitive prefix of id, name or email, with LIKE's wildcards
// taken literally.
func TestCustomersList(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	tag := "lst" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	var ids []string
	for _, c := range []Customer{
		{ID: tag + "-a", Name: "Acme Corp", Email: "ops@acme.example"},
		{ID: tag + "-b", Name: "Beta_" + tag, Email: "b@beta.example"},
		{ID: tag + "-c", Name: "acme labs " + tag},
		{ID: tag + "-d", Email: strings.ToUpper(tag) + "@x.example"},
	} {
		w.clock.Advance(time.Millisecond) // distinct created_at, oldest first
		got, err := w.svc.CreateCustomer(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got.ID)
	}
	list := func(q, after string, limit int) ([]string, string) {
		t.Helper()
		cs, next, err := w.svc.Customers(ctx, q, after, limit)
		if err != nil {
			t.Fatalf("Customers(%q): %v", q, err)
		}
		var out []string
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out, next
	}
	// The tag is a prefix of every id: all four, newest first, in pages of 3.
	page, next := list(strings.ToUpper(tag), "", 3)
	if strings.Join(page, ",") != strings.Join([]string{ids[3], ids[2], ids[1]}, ",") || next == "" {
		t.Fatalf("first page %v, next %q", page, next)
	}
	page, next = list(strings.ToUpper(tag), next, 3)
	if strings.Join(page, ",") != ids[0] || next != "" {
		t.Fatalf("second page %v, next %q", page, next)
	}
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{tag + "-b", []string{ids[1]}},
		{"beta_" + tag, []string{ids[1]}},               // name, other case
		{"acme labs " + tag, []string{ids[2]}},          // name
		{strings.ToLower(tag) + "@x", []string{ids[3]}}, // email, other case
		{tag + "_", nil},                                // _ is not a wildcard
		{tag + "%", nil},                                // nor is %
	} {
		if got, _ := list(tc.q, "", 50); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("q=%q: %v, want %v", tc.q, got, tc.want)
		}
	}
	if _, _, err := w.svc.Customers(ctx, "", "nonsense", 10); fault.FieldOf(err) != "cursor" {
		t.Errorf("a bad cursor: %v", err)
	}
	if _, _, err := w.svc.Customers(ctx, "a\x00b", "", 10); fault.FieldOf(err) != "q" {
		t.Errorf("a NUL in q: %v", err)
	}
}

// A customer's name, email and metadata change as CreateCustomer would
// take them; what is left out stays.
func TestUpdateCustomer(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	c, err := w.svc.CreateCustomer(ctx, Customer{Name: "Old", Email: "old@x.example", Metadata: json.RawMessage(`{"tier":"gold"}`)})
	if err != nil {
		t.Fatal(err)
	}
	str := func(s string) *string { return &s }
	got, err := w.svc.UpdateCustomer(ctx, c.ID, CustomerPatch{Name: str("New")})
	if err != nil || got.Name != "New" || got.Email != "old@x.example" || string(got.Metadata) != `{"tier": "gold"}` {
		t.Fatalf("name only: %+v %v", got, err)
	}
	got, err = w.svc.UpdateCustomer(ctx, c.ID, CustomerPatch{Email: str(""), Metadata: json.RawMessage(`{"tier":"silver"}`)})
	if err != nil || got.Name != "New" || got.Email != "" || string(got.Metadata) != `{"tier": "silver"}` {
		t.Fatalf("email removed, metadata replaced: %+v %v", got, err)
	}
	got, err = w.svc.UpdateCustomer(ctx, c.ID, CustomerPatch{Metadata: json.RawMessage(`null`)})
	if err != nil || got.Metadata != nil || got.Name != "New" {
		t.Fatalf("metadata removed: %+v %v", got, err)
	}
	if got, err := w.svc.UpdateCustomer(ctx, c.ID, CustomerPatch{}); err != nil || got.ID != c.ID {
		t.Fatalf("empty patch: %+v %v", got, err)
	}
	for _, tc := range []struct {
		p     CustomerPatch
		field string
	}{
		{CustomerPatch{Name: str("a\x00b")}, "name"},
		{CustomerPatch{Name: str(strings.Repeat("n", 201))}, "name"},
		{CustomerPatch{Email: str("nobody")}, "email"},
		{CustomerPatch{Metadata: json.RawMessage(`[1]`)}, "metadata"},
	} {
		if _, err := w.svc.UpdateCustomer(ctx, c.ID, tc.p); !errors.Is(err, fault.Invalid) || fault.FieldOf(err) != tc.field {
			t.Errorf("%+v: %v, want invalid %s", tc.p, err, tc.field)
		}
	}
	for _, id := range []string{"nobody-" + uuid.NewString(), "bad\x00id"} {
		if _, err := w.svc.UpdateCustomer(ctx, id, CustomerPatch{Name: str("x")}); !errors.Is(err, fault.NotFound) {
			t.Errorf("unknown %q: %v", id, err)
		}
	}
}
