package metering

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
)

// An event is its own record: a batch's events of one wallet share one
// journal entry (postings summed per account), no event has an entry or a
// key in the journal of its own, an event one meter counts carries its
// usage line on its row, and metering's checks prove that the events'
// charges add up to their entries.
func TestEventsAreSummarizedPerWallet(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	a, wa := w.customer(t, "1000")
	b, wb := w.customer(t, "1000")
	name := unique("ev")
	tokens := w.meter(t, Meter{Code: "tokens", EventName: name, Aggregation: Sum, Property: "tokens"})
	calls := w.meter(t, Meter{Code: "calls", EventName: unique("ev"), Aggregation: Count})
	w.price(t, tokens, `{"model":"per_unit","unit_price":"0.001"}`)
	w.price(t, calls, `{"model":"per_unit","unit_price":"0.5"}`)
	// A second meter on the same event name: events that carry "images"
	// count for both, and keep their lines as usage records.
	images := w.meter(t, Meter{Code: "images", EventName: name, Aggregation: Sum, Property: "images"})
	w.price(t, images, `{"model":"per_unit","unit_price":"0.25"}`)

	var evs []json.RawMessage
	for i := range 60 {
		cus := a
		if i%3 == 2 {
			cus = b
		}
		props := map[string]any{"tokens": 10 * (i + 1)}
		if i%20 == 0 {
			props["images"] = 2
		}
		evs = append(evs, event(fmt.Sprintf("sum-%d-%s", i, a), cus, name, props))
	}
	if res := w.ingest(t, evs...); res.Accepted != len(evs) {
		t.Fatalf("%+v", res)
	}
	// Each wallet's charge, exactly: tokens at 0.001, images at 0.25.
	want := map[string]ledger.Amount{}
	for i := range 60 {
		cus := a
		if i%3 == 2 {
			cus = b
		}
		c := ledger.MustAmount(fmt.Sprint(10 * (i + 1))).Decimal().Mul(ledger.MustAmount("0.001").Decimal())
		if i%20 == 0 {
			c = c.Add(ledger.MustAmount("0.5").Decimal())
		}
		want[cus] = want[cus].Add(ledger.MustAmount(c.String()))
	}
	if got := w.balance(t, wa.ID).Consumed; !got.Equal(want[a]) {
		t.Fatalf("A consumed %s, want %s", got, want[a])
	}
	if got := w.balance(t, wb.ID).Consumed; !got.Equal(want[b]) {
		t.Fatalf("B consumed %s, want %s", got, want[b])
	}

	// No event has a journal entry or key of its own.
	var keyed int
	if err := w.db.Pool.QueryRow(ctx, `SELECT COUNT(*) FROM ledger_entries WHERE idempotency_key LIKE $1`, "event:sum-%-"+a).Scan(&keyed); err != nil {
		t.Fatal(err)
	}
	if keyed != 0 {
		t.Fatalf("%d events keyed in the journal", keyed)
	}
	// Each event names an entry of its wallet; the entries' ops add up to
	// the events; fewer entries than events (one per batch and wallet).
	rows, err := w.db.Pool.Query(ctx, `SELECT e.owner_id = $2, e.kind, e.metadata->>'ops', COUNT(*)
		FROM events v JOIN ledger_entries e ON e.id = v.entry_id
		WHERE v.event_id LIKE $1 GROUP BY e.id, e.owner_id, e.kind, e.metadata`, "sum-%-"+a, wa.ID)
	if err != nil {
		t.Fatal(err)
	}
	entries, events := 0, 0
	for rows.Next() {
		var (
			ownedByA bool
			kind     string
			ops      *string
			n        int
		)
		if err := rows.Scan(&ownedByA, &kind, &ops, &n); err != nil {
			t.Fatal(err)
		}
		if kind != KindUsage || ops == nil || *ops != fmt.Sprint(n) {
			t.Fatalf("entry of kind %s with ops %v names %d events", kind, ops, n)
		}
		entries, events = entries+1, events+n
	}
	rows.Close()
	if events != 60 || entries >= events {
		t.Fatalf("%d events in %d entries", events, entries)
	}
	// One meter: the line is on the event row; two: usage records.
	var folded, recorded, records int
	if err := w.db.Pool.QueryRow(ctx, `SELECT COUNT(*) FILTER (WHERE meter_id IS NOT NULL), COUNT(*) FILTER (WHERE meter_id IS NULL),
			(SELECT COUNT(*) FROM usage_records WHERE event_id LIKE $1)
		FROM events WHERE event_id LIKE $1`, "sum-%-"+a).Scan(&folded, &recorded, &records); err != nil {
		t.Fatal(err)
	}
	if folded != 57 || recorded != 3 || records != 6 {
		t.Fatalf("%d events with their line folded, %d with %d usage records; want 57, 3 with 6", folded, recorded, records)
	}
	// The usage report reads both: A's events 0 and 40 carried 2 images
	// each (records), every one of its events tokens (mostly folded).
	from, to := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	for _, c := range []struct {
		meter, want string
	}{{images.Code, "1"}, {tokens.Code, want[a].Sub(ledger.MustAmount("1")).String()}} {
		u, err := w.svc.Usage(ctx, a, c.meter, from, to, Day)
		if err != nil {
			t.Fatal(err)
		}
		if got := u.Amounts["CREDITS"]; got.String() != c.want {
			t.Fatalf("usage of %s: %s, want %s", c.meter, got, c.want)
		}
	}

	// The check can fail: an event charged more than its entry says.
	mustViolate(t, w.db, `UPDATE events SET amount = amount + 1 WHERE event_id = $1`, "sum-1-"+a)
	mustViolate(t, w.db, `UPDATE usage_records SET amount = amount - 0.25 WHERE event_id = $1 AND meter_id = $2`, "sum-0-"+a, images.ID)
	mustViolate(t, w.db, `UPDATE events SET entry_id = $2 WHERE event_id = $1`, "sum-3-"+a, ledger.NewEntryID())
}

// mustViolate applies a change in a transaction that is rolled back, and
// requires metering's checks to find a violation in it.
func mustViolate(t *testing.T, db *pg.DB, change string, args ...any) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, change, args...); err != nil {
		t.Fatal(err)
	}
	for _, c := range Checks() {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM (`+c.SQL+`) v`).Scan(&n); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if n > 0 {
			return
		}
	}
	t.Fatalf("no check found the change %q", change)
}

// Two processes applying the same events at once: each event counts once,
// whichever batch wins the events table's primary key; the loser's batch
// runs again and finds the events applied.
func TestConcurrentProcessesApplyAnEventOnce(t *testing.T) {
	w1 := newWorld(t)
	w2 := worldOn(t, w1.db)
	cus, wl := w1.customer(t, "1000")
	m := w1.meter(t, Meter{Code: "calls", Aggregation: Count})
	w1.price(t, m, `{"model":"per_unit","unit_price":"1"}`)
	var evs []json.RawMessage
	for i := range 200 {
		evs = append(evs, event(fmt.Sprintf("race-%d-%s", i, cus), cus, m.EventName, nil))
	}
	var wg sync.WaitGroup
	results := make([]IngestResult, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := w1
			if i%2 == 1 {
				w = w2
			}
			res, err := w.svc.Ingest(context.Background(), evs, IngestOptions{Source: "test"})
			if err != nil {
				t.Error(err)
			}
			results[i] = res
		}()
	}
	wg.Wait()
	accepted := 0
	for _, r := range results {
		if len(r.Rejected) > 0 || r.Accepted+r.Duplicates != len(evs) {
			t.Fatalf("%+v", r)
		}
		accepted += r.Accepted
	}
	if accepted != len(evs) {
		t.Fatalf("%d accepted across the callers, want %d", accepted, len(evs))
	}
	if got := w1.balance(t, wl.ID).Consumed.String(); got != "200" {
		t.Fatalf("consumed %s, want 200", got)
	}
	var n int
	if err := w1.db.Pool.QueryRow(context.Background(), `SELECT COUNT(*) FROM events WHERE event_id LIKE $1`, "race-%-"+cus).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(evs) {
		t.Fatalf("%d event rows", n)
	}
}
