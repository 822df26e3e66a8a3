package metering

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

// COPY (PostgreSQL) and the INSERT of unnested arrays (CockroachDB) write
// the same event rows: each form writes the same events, under other ids,
// in one transaction rolled back, and every other column must be equal.
func TestEventRowsBothWays(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	ts := time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC)
	wl := wallet.WalletID(uuid.New())
	sum := &Meter{ID: uuid.New(), Code: "tokens", Aggregation: Sum}
	uniq := &Meter{ID: uuid.New(), Code: "users", Aggregation: UniqueCount}
	build := func(prefix string) ([]eventRow, map[string]*usageRecord) {
		ev := func(id string, props string) Event {
			e := Event{EventID: prefix + id, CustomerID: "c1", EventName: "llm", Timestamp: &ts}
			if props != "" {
				e.Properties = json.RawMessage(props)
			}
			return e
		}
		evs := []eventRow{
			{event: ev("sum", `{"tokens": 1200, "model": "big"}`), source: "http", received: ts, entry: ledger.NewEntryID(), fingerprint: []byte{1, 2}},
			{event: ev("uniq", `{"user": "ü-1"}`), source: "nats", received: ts, entry: ledger.NewEntryID(), fingerprint: []byte{3},
				misses: []Miss{{Meter: "images", Reason: `property "images" is missing`}}},
			{event: ev("two-meters", ""), source: "http", received: ts, entry: ledger.NewEntryID(), fingerprint: []byte{4}},
		}
		folded := map[string]*usageRecord{
			prefix + "sum": {event: evs[0].event, meter: sum, dimsKey: `{"model":"big"}`, step: step{value: decimal.RequireFromString("1200")},
				period: ts.Truncate(24 * time.Hour), charge: MeterCharge{Asset: "CREDITS", Dimensions: json.RawMessage(`{"model":"big"}`),
					QuantityBefore: decimal.RequireFromString("0.5"), QuantityAfter: decimal.RequireFromString("1200.5"),
					Amount: ledger.MustAmount("0.000000000001"), Overage: ledger.MustAmount("-3.25"), WalletID: &wl}},
			prefix + "uniq": {event: evs[1].event, meter: uniq, step: step{unique: "ü-1"}, period: ts,
				charge: MeterCharge{Asset: "CREDITS", QuantityBefore: decimal.Zero, QuantityAfter: decimal.RequireFromString("1"),
					Amount: ledger.MustAmount("12345678901234.123456789012")}},
		}
		return evs, folded
	}
	tx, err := w.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	a, fa := build("copy-")
	b, fb := build("insert-")
	if err := copyEvents(ctx, tx, a, fa); err != nil {
		t.Fatal(err)
	}
	if err := insertEvents(ctx, tx, b, fb); err != nil {
		t.Fatal(err)
	}
	read := func(prefix string) map[string]string {
		rows, err := tx.Query(ctx, `SELECT substr(event_id, length($1) + 1), (to_jsonb(e) - 'event_id' - 'entry_id')::TEXT
			FROM events e WHERE event_id LIKE $1 || '%'`, prefix)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var id, row string
			if err := rows.Scan(&id, &row); err != nil {
				t.Fatal(err)
			}
			out[id] = row
		}
		return out
	}
	got, want := read("copy-"), read("insert-")
	if len(got) != 3 || len(want) != 3 {
		t.Fatalf("%d rows copied, %d inserted", len(got), len(want))
	}
	for id, row := range want {
		if got[id] != row {
			t.Errorf("event %s:\n copied   %s\n inserted %s", id, got[id], row)
		}
	}
}
