package metering

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/creditledger/creditledger/fault"
)

// TestTextPoisonIsRejectedAlone: events whose text PostgreSQL cannot store
// (a NUL, a lone surrogate, invalid UTF-8, a number NUMERIC cannot hold),
// or whose keys readers could read two ways, are each rejected and
// recorded on their own, saying what is wrong; the good events sent with
// them apply. Before, the first kind failed the whole batch (and, over
// NATS, was redelivered for ever) and the second was applied as
// encoding/json read it.
func TestTextPoisonIsRejectedAlone(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	cus, wl := w.customer(t, "100")
	m := w.meter(t, Meter{Code: "calls", Aggregation: Count})
	w.price(t, m, `{"model":"per_unit","unit_price":"1"}`)
	ev := func(id, rest string) json.RawMessage {
		return json.RawMessage(`{"event_id":"` + id + `-` + cus + `","customer_id":"` + cus + `","event_name":"` + m.EventName + `"` + rest + `}`)
	}
	bad := []struct {
		name   string
		raw    json.RawMessage
		code   string
		detail string
	}{
		{"NUL in a property value", ev("nul-value", `,"properties":{"model":"a\u0000b"}`), CodeInvalidEvent, `properties: must not contain NUL (\u0000)`},
		{"NUL in a property key", ev("nul-key", `,"properties":{"a\u0000":1}`), CodeInvalidEvent, `properties: must not contain NUL (\u0000)`},
		{"lone surrogate in a property", ev("surrogate", `,"properties":{"model":"\ud800"}`), CodeInvalidEvent, "properties.model: is not UTF-8 text"},
		{"number NUMERIC cannot hold", ev("numeric", `,"properties":{"n":1e-20000}`), CodeInvalidEvent, "properties: must not contain a number"},
		{"invalid UTF-8 in a property", ev("utf8", ",\"properties\":{\"model\":\"\xff\xfe\"}"), CodeInvalidEvent, "event is not valid UTF-8"},
		{"NUL in the event id", json.RawMessage(`{"event_id":"nul\u0000id-` + cus + `","customer_id":"` + cus + `","event_name":"` + m.EventName + `"}`),
			CodeInvalidEvent, "event_id: 1 to 128 characters"},
		{"raw NUL byte", json.RawMessage("{\"event_id\":\"rawnul-" + cus + "\",\x00}"), CodeInvalidJSON, "not valid JSON"},
		{"duplicate key", ev("dup", `,"event_name":"other"`), CodeInvalidEvent, "event_name: appears more than once"},
		{"case variant of a key", ev("case", `,"Event_Name":"other"`), CodeInvalidEvent, `Event_Name: differs only in case from "event_name"`},
		{"duplicate property", ev("dup-prop", `,"properties":{"n":1,"n":2}`), CodeInvalidEvent, "properties.n: appears more than once"},
		{"field in another case", json.RawMessage(`{"EVENT_ID":"upper-` + cus + `","customer_id":"` + cus + `","event_name":"` + m.EventName + `"}`),
			CodeInvalidEvent, `EVENT_ID: unknown field; did you mean "event_id"?`},
		{"trailing brace", json.RawMessage(string(ev("trailing", "")) + "}"), CodeInvalidJSON, "trailing data after the event"},
	}
	raws := []json.RawMessage{ev("good-1", "")}
	for _, b := range bad {
		raws = append(raws, b.raw)
	}
	raws = append(raws, ev("good-2", ""))
	res, err := w.svc.Ingest(ctx, raws, IngestOptions{Source: "test"})
	if err != nil {
		t.Fatalf("ingest failed as a whole: %v", err)
	}
	if res.Accepted != 2 || len(res.Rejected) != len(bad) {
		t.Fatalf("accepted %d, rejected %d, want 2 and %d: %+v", res.Accepted, len(res.Rejected), len(bad), res.Rejected)
	}
	for _, r := range res.Rejected {
		b := bad[*r.Index-1]
		if r.Code != b.code || !strings.Contains(r.Detail, b.detail) {
			t.Errorf("%s: %s %q, want %s with %q", b.name, r.Code, r.Detail, b.code, b.detail)
		}
		if strings.ContainsRune(r.Detail, 0) || strings.ContainsRune(r.EventID, 0) {
			t.Errorf("%s: the rejection carries a NUL: %+v", b.name, r)
		}
	}
	if got := w.balance(t, wl.ID).Consumed.String(); got != "2" {
		t.Fatalf("consumed %s, want 2", got)
	}
	// Recorded, as received but storable. All but the two that are not
	// JSON name the customer.
	list, _, err := w.svc.Rejections(ctx, cus, "", 500)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(bad)-2 {
		t.Fatalf("recorded %d rejections for the customer, want %d", len(list), len(bad)-2)
	}
	for _, r := range list {
		if r.Raw == "" || strings.ContainsRune(r.Raw, 0) {
			t.Errorf("recorded raw %q", r.Raw)
		}
	}
	// Lookups by text PostgreSQL cannot hold find nothing, without asking it.
	if list, _, err := w.svc.Rejections(ctx, "a\x00", "", 10); err != nil || len(list) != 0 {
		t.Fatalf("rejections of a NUL customer id: %v, %v", list, err)
	}
	if _, err := w.svc.Usage(ctx, cus, "calls\x00", w.l.Now().Add(-1), w.l.Now(), Hour); !errors.Is(err, fault.Invalid) || fault.FieldOf(err) != "meter" {
		t.Fatalf("usage of a NUL meter code: %v, want a validation error on meter", err)
	}
}

// A meter's names are patterns, so text PostgreSQL cannot store never
// matches them; its filter values are free text, checked as such.
func TestMeterTextIsValidated(t *testing.T) {
	long := strings.Repeat("a", 65)
	ok := Meter{Code: "tokens", EventName: "completion", Aggregation: Sum, Property: "tokens",
		Filters: map[string][]string{"model": {"gpt-4o", "Café\t東京"}}, GroupBy: []string{"model"}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("a good meter: %v", err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*Meter)
		field string
	}{
		{"code with NUL", func(m *Meter) { m.Code = "tok\x00ens" }, "code"},
		{"code not UTF-8", func(m *Meter) { m.Code = "tok\xffens" }, "code"},
		{"code too long", func(m *Meter) { m.Code = long }, "code"},
		{"event name with NUL", func(m *Meter) { m.EventName = "completion\x00" }, "event_name"},
		{"event name not UTF-8", func(m *Meter) { m.EventName = "completion\xc3" }, "event_name"},
		{"event name too long", func(m *Meter) { m.EventName = long }, "event_name"},
		{"property with NUL", func(m *Meter) { m.Property = "to\x00kens" }, "property"},
		{"property not UTF-8", func(m *Meter) { m.Property = "\xfetokens" }, "property"},
		{"property too long", func(m *Meter) { m.Property = long }, "property"},
		{"filter key with NUL", func(m *Meter) { m.Filters = map[string][]string{"mo\x00del": {"x"}} }, "filters"},
		{"filter key not UTF-8", func(m *Meter) { m.Filters = map[string][]string{"mo\xffdel": {"x"}} }, "filters"},
		{"filter value with NUL", func(m *Meter) { m.Filters = map[string][]string{"model": {"gpt\x00"}} }, "filters.model"},
		{"filter value not UTF-8", func(m *Meter) { m.Filters = map[string][]string{"model": {"gpt\xff"}} }, "filters.model"},
		{"filter value with a control character", func(m *Meter) { m.Filters = map[string][]string{"model": {"gpt\x1b"}} }, "filters.model"},
		{"filter value too long", func(m *Meter) { m.Filters = map[string][]string{"model": {strings.Repeat("v", 257)}} }, "filters.model"},
		{"group by with NUL", func(m *Meter) { m.GroupBy = []string{"model\x00"} }, "group_by"},
		{"group by not UTF-8", func(m *Meter) { m.GroupBy = []string{"\xffmodel"} }, "group_by"},
		{"group by too long", func(m *Meter) { m.GroupBy = []string{long} }, "group_by"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := ok
			tc.edit(&m)
			if err := m.Validate(); !errors.Is(err, fault.Invalid) || fault.FieldOf(err) != tc.field {
				t.Fatalf("Validate() = %v, want a validation error on %s", err, tc.field)
			}
		})
	}
}
