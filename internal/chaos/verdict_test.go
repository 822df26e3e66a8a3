package chaos

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// EventVerdict is what the events table says about the innocent events.
type EventVerdict struct {
	Rows       EventRows
	Lost       []string // acked, not applied
	NeverAcked int      // never stored by the broker / accepted by the API
	Unexpected []string // rows that are no event of ours (and not allowed)
}

// CheckEvents reads the events table, charges every innocent event that
// must be applied (acked) or was (present) to its wallet in x, and returns
// what is missing or extra. allowed says which other ids may be present
// (attack events that a fixed ledgerd may accept).
func CheckEvents(ctx context.Context, t *testing.T, r *Rig, accts []Account, x *Expectation, sent []Sent, allowed func(id string) bool) EventVerdict {
	t.Helper()
	rows, err := ReadEvents(ctx, r.DBURL)
	if err != nil {
		t.Fatalf("read events: %v", err)
	}
	v := EventVerdict{Rows: rows}
	ours := make(map[string]bool, len(sent))
	for _, s := range sent {
		id := s.Event.ID
		ours[id] = true
		present := rows.IDs[id]
		if s.Acked && !present {
			v.Lost = append(v.Lost, id)
		}
		if !s.Acked {
			v.NeverAcked++
		}
		if s.Acked || present {
			x.Charge(accts[s.Event.Account].Wallet, s.Event.Charge())
		}
	}
	for id := range rows.IDs {
		if !ours[id] && (allowed == nil || !allowed(id)) {
			v.Unexpected = append(v.Unexpected, id)
		}
	}
	return v
}

// Judge fills the row's lost, doubled and wallet columns from the checks,
// runs ledgerctl verify, and fails the test for each breach of the
// contract. innocentFailures is the scenario's own count (operations),
// to which events not applied and never acked are added.
func Judge(ctx context.Context, t *testing.T, r *Rig, row *Row, accts []Account, x *Expectation, v EventVerdict, innocentFailures int) {
	t.Helper()
	row.Lost += len(v.Lost)
	row.Doubled += v.Rows.Count - v.Rows.Distinct
	row.Innocent += innocentFailures + len(v.Lost) + v.NeverAcked
	if len(v.Lost) > 0 {
		t.Errorf("%d innocent events acked but not applied (first: %v)", len(v.Lost), first(v.Lost, 5))
		row.Notef("%d innocent events acked but not in the events table (first: %v)", len(v.Lost), first(v.Lost, 3))
	}
	if v.NeverAcked > 0 {
		t.Errorf("%d innocent events were never acked (by the stream, or by a 202)", v.NeverAcked)
		row.Notef("%d innocent events never acked by the stream / a 202", v.NeverAcked)
	}
	if d := v.Rows.Count - v.Rows.Distinct; d != 0 {
		t.Errorf("events: %d rows for %d distinct ids", v.Rows.Count, v.Rows.Distinct)
	}
	if len(v.Unexpected) > 0 {
		t.Errorf("%d event rows that are no innocent event (first: %q)", len(v.Unexpected), first(v.Unexpected, 5))
		row.Notef("%d unexpected event rows (first: %q)", len(v.Unexpected), first(v.Unexpected, 3))
	}
	wc, err := CheckWallets(ctx, r.API, accts, x)
	if err != nil {
		t.Errorf("wallets: %v", err)
		row.Notef("wallets could not be read: %v", err)
	}
	row.Off += len(wc.Off)
	row.Doubled += wc.Over
	if len(wc.Off) > 0 {
		t.Errorf("%d of %d wallets not exact:\n%s", len(wc.Off), wc.Wallets, fmt.Sprint(first(wc.Off, 10)))
		row.Notef("%d of %d wallets not exact (first: %s)", len(wc.Off), wc.Wallets, first(wc.Off, 2))
	}
	r.Verify(ctx, row)
}

func first[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// NewRow starts a scenario's row; it is added to the report, passed or
// failed, when the test ends.
func NewRow(t *testing.T, scenario string) *Row {
	row := &Row{Scenario: scenario, Mode: mode(), Runs: 1}
	start := time.Now()
	t.Cleanup(func() {
		row.Took = time.Since(start)
		row.Pass = !t.Failed()
		suite.Report.Add(row)
	})
	return row
}
