package metering

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/ledger"
)

// A meter that matches an event but cannot count it (its property absent
// or not a number) is a miss when another meter counts the event; a value
// out of bounds, or a miss of every meter, refuses the event.
func TestMissesInMemory(t *testing.T) {
	m := newMemMetering(t)
	m.customer("cus-1", "CREDITS")
	tokens := m.meter(Meter{Code: "tokens", Aggregation: Sum, Property: "tokens"})
	images := m.meter(Meter{Code: "images", Aggregation: Sum, Property: "images"})
	m.price(tokens, "CREDITS", `{"model":"per_unit","unit_price":"0.5"}`)
	m.price(images, "CREDITS", `{"model":"per_unit","unit_price":"2"}`)

	for _, tc := range []struct {
		name, props string
		reject      string
		charges     []string // meter:amount
		misses      []Miss
	}{
		{"both count", `{"tokens":4,"images":1}`, "", []string{"tokens:2", "images:2"}, nil},
		{"images absent", `{"tokens":4}`, "", []string{"tokens:2"},
			[]Miss{{Meter: "images", Reason: `property "images" is missing`}}},
		{"images not a number", `{"tokens":4,"images":"two"}`, "", []string{"tokens:2"},
			[]Miss{{Meter: "images", Reason: `property "images" is not a number`}}},
		{"tokens absent", `{"images":3}`, "", []string{"images:6"},
			[]Miss{{Meter: "tokens", Reason: `property "tokens" is missing`}}},
		{"every meter misses", `{"other":1}`, CodeInvalidValue, nil, nil},
		{"a value out of bounds refuses the event", `{"tokens":4,"images":-1}`, CodeInvalidValue, nil, nil},
		{"a value beyond MaxQuantity refuses the event", `{"tokens":4,"images":"1e16"}`, CodeInvalidValue, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := len(m.rec.calls)
			res, code := m.send("cus-1", "api.call", tc.props, mt0)
			if code != tc.reject {
				t.Fatalf("refusal %q, want %q", code, tc.reject)
			}
			if tc.reject != "" {
				if len(m.rec.calls) != calls {
					t.Fatalf("a refused event charged the wallet: %+v", m.rec.calls[calls:])
				}
				return
			}
			var got []string
			for _, c := range res.Charges {
				got = append(got, c.Meter+":"+c.Amount.String())
			}
			if strings.Join(got, ",") != strings.Join(tc.charges, ",") || len(m.rec.calls)-calls != len(tc.charges) {
				t.Fatalf("charges %v (%d asked of the wallet), want %v", got, len(m.rec.calls)-calls, tc.charges)
			}
			if len(res.Misses) != len(tc.misses) {
				t.Fatalf("misses %+v, want %+v", res.Misses, tc.misses)
			}
			for i := range tc.misses {
				if res.Misses[i] != tc.misses[i] {
					t.Fatalf("misses %+v, want %+v", res.Misses, tc.misses)
				}
			}
		})
	}

	// The result's JSON carries misses only when there are some.
	full, _ := m.send("cus-1", "api.call", `{"tokens":1,"images":1}`, mt0)
	raw, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "misses") {
		t.Errorf("an event every meter counted has misses in its result: %s", raw)
	}
}

// The reason of an event every meter missed names each meter.
func TestAllMissReason(t *testing.T) {
	var res Applied
	_, err := countable([]*Meter{
		{Code: "a", Aggregation: Sum, Property: "a"},
		{Code: "b", Aggregation: UniqueCount, Property: "b"},
	}, properties{"c": json.Number("1")}, &res)
	var rej *ledger.Rejection
	if !errors.As(err, &rej) || rej.Code != CodeInvalidValue {
		t.Fatalf("err %v, want invalid_value", err)
	}
	if !strings.Contains(rej.Error(), "meter a:") || !strings.Contains(rej.Error(), "meter b:") {
		t.Errorf("reason %q does not name both meters", rej.Error())
	}
}

// Through the database: the miss is stored on the event row, the counting
// meter charges the wallet, and an event every meter misses is rejected.
func TestMissesStored(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	cus, wl := w.customer(t, "100")
	name := unique("ev")
	tokens := w.meter(t, Meter{Code: "tokens", EventName: name, Aggregation: Sum, Property: "tokens"})
	images := w.meter(t, Meter{Code: "images", EventName: name, Aggregation: Sum, Property: "images"})
	w.price(t, tokens, `{"model":"per_unit","unit_price":"0.5"}`)
	w.price(t, images, `{"model":"per_unit","unit_price":"2"}`)

	res := w.ingest(t,
		event("miss-1-"+cus, cus, name, map[string]any{"tokens": 10}),
		event("miss-2-"+cus, cus, name, map[string]any{"tokens": 2, "images": 3}),
		event("miss-3-"+cus, cus, name, map[string]any{"seconds": 3}),
	)
	if res.Accepted != 2 || len(res.Rejected) != 1 || res.Rejected[0].Code != CodeInvalidValue || *res.Rejected[0].Index != 2 {
		t.Fatalf("%+v", res)
	}
	// 10 × 0.5, then 2 × 0.5 + 3 × 2.
	if got := w.balance(t, wl.ID).Consumed.String(); got != "12" {
		t.Fatalf("consumed %s, want 12", got)
	}
	var misses []Miss
	var raw []byte
	if err := w.db.Pool.QueryRow(ctx, `SELECT misses FROM events WHERE event_id = $1`, "miss-1-"+cus).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &misses); err != nil {
		t.Fatal(err)
	}
	if len(misses) != 1 || misses[0].Meter != images.Code || misses[0].Reason != `property "images" is missing` {
		t.Fatalf("stored misses %s", raw)
	}
	var none *string
	if err := w.db.Pool.QueryRow(ctx, `SELECT misses::TEXT FROM events WHERE event_id = $1`, "miss-2-"+cus).Scan(&none); err != nil {
		t.Fatal(err)
	}
	if none != nil {
		t.Fatalf("an event every meter counted has misses %s", *none)
	}
	// The event row is its own record (no journal entry of its own): the
	// one meter that counted it is its usage line, folded into the row.
	var meter string
	var folded bool
	if err := w.db.Pool.QueryRow(ctx, `SELECT m.code, v.meter_id IS NOT NULL FROM usage_lines r JOIN meters m ON m.id = r.meter_id
		JOIN events v ON v.event_id = r.event_id WHERE r.event_id = $1`, "miss-1-"+cus).Scan(&meter, &folded); err != nil {
		t.Fatal(err)
	}
	if meter != tokens.Code || !folded {
		t.Fatalf("usage line of meter %s (folded into the event: %v), want %s folded", meter, folded, tokens.Code)
	}
}

// An archived meter counts no new event: events only it matched are
// rejected as no_meter, the others count for the active meters; archiving
// twice answers the same meter.
func TestArchiveMeter(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	cus, wl := w.customer(t, "100")
	name := unique("ev")
	calls := w.meter(t, Meter{Code: "calls", EventName: name, Aggregation: Count})
	other := w.meter(t, Meter{Code: "other", EventName: unique("ev"), Aggregation: Count})
	w.price(t, calls, `{"model":"per_unit","unit_price":"1"}`)
	w.price(t, other, `{"model":"per_unit","unit_price":"1"}`)
	if res := w.ingest(t, event("arch-1-"+cus, cus, name, nil)); res.Accepted != 1 {
		t.Fatalf("%+v", res)
	}
	a, err := w.svc.ArchiveMeter(ctx, calls.Code)
	if err != nil {
		t.Fatal(err)
	}
	if a.ArchivedAt == nil || a.Code != calls.Code {
		t.Fatalf("archived %+v", a)
	}
	again, err := w.svc.ArchiveMeter(ctx, calls.Code)
	if err != nil {
		t.Fatal(err)
	}
	if again.ArchivedAt == nil || !again.ArchivedAt.Equal(*a.ArchivedAt) {
		t.Fatalf("archived again %v, first %v", again.ArchivedAt, a.ArchivedAt)
	}
	if _, err := w.svc.ArchiveMeter(ctx, "no-such-meter"); !errors.Is(err, fault.NotFound) {
		t.Fatalf("archive unknown: %v", err)
	}
	res := w.ingest(t, event("arch-2-"+cus, cus, name, nil), event("arch-3-"+cus, cus, other.EventName, nil))
	if res.Accepted != 1 || len(res.Rejected) != 1 || res.Rejected[0].Code != CodeNoMeter || *res.Rejected[0].Index != 0 {
		t.Fatalf("%+v", res)
	}
	if got := w.balance(t, wl.ID).Consumed.String(); got != "2" {
		t.Fatalf("consumed %s, want 2", got)
	}
	got, err := w.svc.Meter(ctx, calls.Code)
	if err != nil || got.ArchivedAt == nil {
		t.Fatalf("Meter: %+v, %v", got, err)
	}
	all, err := w.svc.Meters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		if m.Code == other.Code && m.ArchivedAt != nil {
			t.Errorf("active meter listed archived: %+v", m)
		}
		if m.Code == calls.Code && m.ArchivedAt == nil {
			t.Errorf("archived meter listed active: %+v", m)
		}
	}
	// Its usage so far stays readable.
	u, err := w.svc.Usage(ctx, cus, calls.Code, a.CreatedAt.Add(-time.Hour), a.ArchivedAt.Add(time.Hour), Hour)
	if err != nil || u.Total.String() != "1" {
		t.Fatalf("usage of an archived meter: %+v, %v", u, err)
	}
}
