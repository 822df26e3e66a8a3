package wallet

import (
	"context"
	"testing"
	"time"

	"github.com/creditledger/creditledger/ledger"
)

func TestRunwayOf(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, available, consumed string
		perDay                    string // "" : no burn
		depletes                  time.Time
	}{
		{"no burn", "100", "0", "", time.Time{}},
		{"7 a week, 14 left: two weeks", "14", "7", "1", now.Add(14 * 24 * time.Hour)},
		{"70 a week, 5 left: half a day", "5", "70", "10", now.Add(12 * time.Hour)},
		{"nothing left: now", "0", "7", "1", now},
		{"a third of a day", "1", "21", "3", now.Add(8 * time.Hour)},
		{"barely burning: capped, not overflowing", "1000000000000000", "0.000000000007", "0.000000000001",
			now.AddDate(0, 0, maxRunwayDays)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rw := RunwayOf(ledger.MustAmount(tt.available), ledger.MustAmount(tt.consumed), now)
			if tt.perDay == "" {
				if rw.BurnRatePerDay != nil || rw.DepletesAt != nil {
					t.Fatalf("runway %+v, want none", rw)
				}
				return
			}
			if rw.BurnRatePerDay == nil || !rw.BurnRatePerDay.Equal(ledger.MustAmount(tt.perDay)) {
				t.Fatalf("burn %v, want %s", rw.BurnRatePerDay, tt.perDay)
			}
			if rw.DepletesAt == nil || !rw.DepletesAt.Equal(tt.depletes) {
				t.Fatalf("depletes at %v, want %v", rw.DepletesAt, tt.depletes)
			}
		})
	}
}

func TestRunwayLow(t *testing.T) {
	one := ledger.MustAmount("1")
	tests := []struct {
		available string
		perDay    *ledger.Amount
		days      int
		want      bool
	}{
		{"2.99", &one, 3, true},
		{"3", &one, 3, false}, // exactly three days left is not under three
		{"0", &one, 3, true},
		{"100", nil, 3, false},
		{"1", &one, 0, false}, // alerts off
	}
	for _, tt := range tests {
		if got := RunwayLow(ledger.MustAmount(tt.available), tt.perDay, tt.days); got != tt.want {
			t.Errorf("RunwayLow(%s, %v, %d) = %v, want %v", tt.available, tt.perDay, tt.days, got, tt.want)
		}
	}
}

// The op fires once per reference: not again while the runway stays low,
// again after a credit re-arms it.
func TestRunwayOpOncePerReference(t *testing.T) {
	m := newMemWallet(t, Wallet{})
	m.grant("100", 0, nil)
	runway := func(perDay string) {
		m.t.Helper()
		m.b.Apply(&runwayOp{base: m.base(), perDay: ledger.MustAmount(perDay), days: 3})
	}
	runway("10") // 10 days left: not low
	if got := m.messages(TopicRunwayLow); len(got) != 0 {
		t.Fatalf("fired with ten days left: %v", got)
	}
	m.debit("75")
	runway("10") // 25 left: 2.5 days
	runway("10")
	got := m.messages(TopicRunwayLow)
	if len(got) != 1 {
		t.Fatalf("fired %d times, want once: %v", len(got), got)
	}
	if got[0].Data["available"] != "25" || got[0].Data["burn_rate_per_day"] != "10" || got[0].Data["alert_days"] != float64(3) {
		t.Fatalf("payload %v", got[0].Data)
	}
	m.grant("100", 0, nil) // a credit re-arms it
	runway("100")
	if got := m.messages(TopicRunwayLow); len(got) != 2 {
		t.Fatalf("after a credit fired %d times in all, want 2", len(got))
	}
}

// With the database: the balance answers the burn over the last 7 days
// (debits count, a void does not), and the sweep fires the webhook once.
func TestRunwayBalanceAndSweep(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	wl := w.wallet(t, PolicyBlock, "")
	b, err := w.svc.Balance(ctx, wl.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.BurnRatePerDay != nil || b.DepletesAt != nil {
		t.Fatalf("a new wallet burns: %+v", b)
	}
	w.clock.Advance(-10 * 24 * time.Hour) // a debit before the window does not count
	w.grant(t, wl.ID, "100", 0, nil, nil)
	if _, err := w.debit(t, wl.ID, "50"); err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(10 * 24 * time.Hour)
	void := w.grant(t, wl.ID, "1000", 9, nil, nil) // voided whole: not burnt
	if _, _, err := ledger.Unpack(w.svc.VoidGrant(ctx, "", void.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.debit(t, wl.ID, "35"); err != nil {
		t.Fatal(err)
	}
	b, err = w.svc.Balance(ctx, wl.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 35 in the window: 5 a day; 15 left: three days.
	if b.BurnRatePerDay == nil || b.BurnRatePerDay.String() != "5" {
		t.Fatalf("burn %v, want 5", b.BurnRatePerDay)
	}
	if want := b.AsOf.Add(72 * time.Hour); b.DepletesAt == nil || !b.DepletesAt.Equal(want.Truncate(time.Second)) {
		t.Fatalf("depletes at %v, want %v", b.DepletesAt, want)
	}
	if n, err := w.svc.sweepRunway(ctx, 3, &wl.ID); err != nil || n != 0 {
		t.Fatalf("three days left under a three-day alert: fired %d, %v", n, err)
	}
	if _, err := w.debit(t, wl.ID, "1"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := w.svc.sweepRunway(ctx, 3, &wl.ID); err != nil {
			t.Fatal(err)
		}
	}
	ev := w.events(t, wl.ID, TopicRunwayLow)
	if len(ev) != 1 {
		t.Fatalf("runway_low fired %d times, want once", len(ev))
	}
	if ev[0].Data["available"] != "14" || ev[0].Data["burn_rate_per_day"] != "5.142857142857" {
		t.Fatalf("payload %v", ev[0].Data)
	}
}
