package billing

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/cursor"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/wallet"
)

func TestCloseCycleTwiceIssuesOneInvoice(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	wl := w.wallet(t, wallet.PolicyAllow)
	w.grant(t, wl.ID, "5")
	w.mustDebit(t, wl.ID, "12.345678") // 7.345678 uncovered
	first, replayed, err := ledger.Unpack(w.bills.CloseCycle(ctx, wl.ID))
	if err != nil || replayed {
		t.Fatalf("close: %v replayed=%v", err, replayed)
	}
	second, replayed, err := ledger.Unpack(w.bills.CloseCycle(ctx, wl.ID))
	if err != nil || !replayed || second.ID != first.ID {
		t.Fatalf("second close: %v replayed=%v id %s vs %s", err, replayed, second.ID, first.ID)
	}
	var n int
	if err := w.db.Pool.QueryRow(ctx, `SELECT count(*) FROM invoices WHERE wallet_id = $1`, wl.ID).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d invoices (%v), want 1", n, err)
	}
	// Rounded down to the cent; the rest is carried.
	if !first.Subtotal.Equal(ledger.MustAmount("7.345678")) || !first.Total.Equal(ledger.MustAmount("7.34")) ||
		!first.CarriedOut.Equal(ledger.MustAmount("0.005678")) || len(first.Lines) != 1 || first.Lines[0].Kind != LineDebits {
		t.Fatalf("invoice %+v", first)
	}
	got, err := w.bills.Invoice(ctx, first.ID)
	if err != nil || !got.Total.Equal(first.Total) || len(got.Lines) != 1 {
		t.Fatalf("read back %+v %v", got, err)
	}
	list, _, err := w.bills.Invoices(ctx, wl.CustomerID, nil, 50)
	if err != nil || len(list) != 1 || list[0].ID != first.ID {
		t.Fatalf("list %+v %v", list, err)
	}
	// The receivable moved into the invoice: nothing is owed on the wallet.
	if bal := w.balance(t, wl.ID); !bal.Overage.IsZero() {
		t.Fatalf("overage after the invoice: %s", bal.Overage)
	}
	if n := len(w.outbox(t, wl.ID, TopicInvoiceCreated)); n != 1 {
		t.Fatalf("invoice.created %d times", n)
	}
}

func TestRoundingRemainderIsCarried(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	wl := w.wallet(t, wallet.PolicyAllow)
	// Three cycles of 0.004 each: billed 0, 0, 0.01 — nothing lost.
	want := []struct{ total, carried string }{{"0", "0.004"}, {"0", "0.008"}, {"0.01", "0.002"}}
	var billed ledger.Amount
	for i, c := range want {
		w.mustDebit(t, wl.ID, "0.004")
		inv, _, err := ledger.Unpack(w.bills.CloseCycle(ctx, wl.ID))
		if err != nil {
			t.Fatal(err)
		}
		if !inv.Total.Equal(ledger.MustAmount(c.total)) || !inv.CarriedOut.Equal(ledger.MustAmount(c.carried)) {
			t.Fatalf("cycle %d: total %s carried %s, want %s and %s", i, inv.Total, inv.CarriedOut, c.total, c.carried)
		}
		billed = billed.Add(inv.Total)
		w.clock.Advance(32 * 24 * time.Hour) // into the next cycle
	}
	acc, err := w.l.Account(ctx, wallet.RoundingAccount(wl.ID))
	if err != nil {
		t.Fatal(err)
	}
	if got := billed.Add(acc.Posted(ledger.Debit)); !got.Equal(ledger.MustAmount("0.012")) {
		t.Fatalf("billed + carried = %s, want 0.012", got)
	}
}

func TestSchedulerClosesEndedCycles(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	wl := w.wallet(t, wallet.PolicyAllow)
	w.mustDebit(t, wl.ID, "3")
	if n, err := w.bills.CloseDueCycles(ctx); err != nil || n != 0 {
		t.Fatalf("before the cycle ends: %d %v", n, err)
	}
	start, end := wallet.Cycle(wl.CreatedAt, wl.CreatedAt)
	w.clock.Advance(end.Sub(w.clock.Now()) + time.Second)
	// Two schedulers at once, then again: one invoice for the cycle.
	errs := make(chan error, 2)
	for range 2 {
		go func() { _, err := w.bills.CloseDueCycles(ctx); errs <- err }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n, err := w.bills.CloseDueCycles(ctx); err != nil || n != 0 {
		t.Fatalf("after closing: %d %v", n, err)
	}
	list, _, err := w.bills.Invoices(ctx, wl.CustomerID, nil, 50)
	if err != nil || len(list) != 1 {
		t.Fatalf("invoices %+v %v", list, err)
	}
	inv := list[0]
	if !inv.PeriodStart.Equal(start) || !inv.PeriodEnd.Equal(end) || !inv.Total.Equal(ledger.MustAmount("3")) {
		t.Fatalf("invoice %+v, want [%s, %s) for 3", inv, start, end)
	}
}

// Voiding an immediate top-up's grant after it was invoiced gives the rest
// back as a credit on the next invoice.
func TestVoidedTopupAfterInvoiceIsCredited(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	wl := w.wallet(t, wallet.PolicyBlock)
	w.grant(t, wl.ID, "10")
	// The top-up's grant is younger: on one clock instant the burn-down
	// order between the two would be their random ids'.
	w.clock.Advance(time.Second)
	five, twenty := ledger.MustAmount("5"), ledger.MustAmount("20")
	if _, err := w.wallets.SetAutoTopup(ctx, wl.ID, wallet.NewAutoTopup{Threshold: &five, Amount: &twenty, Payment: wallet.PaymentImmediate}); err != nil {
		t.Fatal(err)
	}
	w.mustDebit(t, wl.ID, "8")
	// The top-up's grant must be younger than the first: with one instant
	// for both, burn-down order fell to their random ids (a flaky test).
	w.clock.Advance(time.Second)
	relay := ledger.NewRelay(w.db, nil, w.wallets)
	relay.Now = w.clock.Now
	if _, err := relay.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	tps, _, err := w.wallets.Topups(ctx, wl.ID, nil, 10)
	if err != nil || len(tps) != 1 {
		t.Fatalf("top-ups %+v %v", tps, err)
	}
	tp := tps[0]
	if tp.Status != wallet.TopupSucceeded {
		t.Fatalf("top-up %+v", tp)
	}
	first, _, err := ledger.Unpack(w.bills.CloseCycle(ctx, wl.ID))
	if err != nil || !first.Total.Equal(ledger.MustAmount("20")) {
		t.Fatalf("first invoice %+v %v", first, err)
	}
	w.mustDebit(t, wl.ID, "2") // burns the older grant first: the top-up's 20 stay whole
	if _, _, err := ledger.Unpack(w.wallets.VoidGrant(ctx, "", *tp.GrantID)); err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(32 * 24 * time.Hour)
	second, _, err := ledger.Unpack(w.bills.CloseCycle(ctx, wl.ID))
	if err != nil {
		t.Fatal(err)
	}
	if !second.Total.Equal(ledger.MustAmount("-20")) || len(second.Lines) != 1 || second.Lines[0].Kind != LineAdjustment {
		t.Fatalf("second invoice %+v, want a credit of 20", second)
	}
}

// A wallet made before next_cycle_end existed (NULL) is still invoiced:
// its first cycle's end stands in, and the close sets the column.
func TestScheduledCloseOfWalletWithoutCycleEnd(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	wl := w.wallet(t, wallet.PolicyAllow)
	w.mustDebit(t, wl.ID, "4")
	if _, err := w.db.Pool.Exec(ctx, `UPDATE wallets SET next_cycle_end = NULL WHERE id = $1`, wl.ID); err != nil {
		t.Fatal(err)
	}
	start, end := wallet.Cycle(wl.CreatedAt, wl.CreatedAt)
	w.clock.Advance(end.Sub(w.clock.Now()) + time.Second)
	if _, err := w.bills.CloseDueCycles(ctx); err != nil {
		t.Fatal(err)
	}
	list, _, err := w.bills.Invoices(ctx, wl.CustomerID, nil, 50)
	if err != nil || len(list) != 1 {
		t.Fatalf("invoices %+v %v", list, err)
	}
	if inv := list[0]; !inv.PeriodStart.Equal(start) || !inv.PeriodEnd.Equal(end) || !inv.Total.Equal(ledger.MustAmount("4")) {
		t.Fatalf("invoice %+v, want [%s, %s) for 4", inv, start, end)
	}
	var next *time.Time
	if err := w.db.Pool.QueryRow(ctx, `SELECT next_cycle_end FROM wallets WHERE id = $1`, wl.ID).Scan(&next); err != nil || next == nil {
		t.Fatalf("next_cycle_end %v %v, want set", next, err)
	}
}

// Invoices page newest first: every invoice once, however the list is cut.
func TestInvoicesPage(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	wl := w.wallet(t, wallet.PolicyAllow)
	var want []InvoiceID
	for range 3 {
		w.mustDebit(t, wl.ID, "1")
		inv, _, err := ledger.Unpack(w.bills.CloseCycle(ctx, wl.ID))
		if err != nil {
			t.Fatal(err)
		}
		want = append([]InvoiceID{inv.ID}, want...)
		_, end := wallet.Cycle(wl.CreatedAt, w.clock.Now())
		w.clock.Advance(end.Sub(w.clock.Now()) + time.Second)
	}
	var got []InvoiceID
	var after *cursor.Cursor
	for pages := 0; ; pages++ {
		list, next, err := w.bills.Invoices(ctx, wl.CustomerID, after, 2)
		if err != nil || pages > 2 {
			t.Fatalf("page %d: %v", pages, err)
		}
		for _, inv := range list {
			got = append(got, inv.ID)
		}
		if next == nil {
			break
		}
		after = next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged %v, want %v", got, want)
	}
}

// A wallet made before billable and rounding accounts existed gets them on
// first use, and its cycle closes as any other's.
func TestCloseOpensAccountsOfOlderWallet(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	wl := w.wallet(t, wallet.PolicyAllow)
	w.mustDebit(t, wl.ID, "2.345")
	for _, code := range []string{"billable:" + wl.ID.String(), "rounding:" + wl.ID.String()} {
		var id ledger.AccountID
		if err := w.db.Pool.QueryRow(ctx, `SELECT id FROM ledger_accounts WHERE code = $1`, code).Scan(&id); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{`DELETE FROM ledger_balances WHERE account_id = $1`, `DELETE FROM ledger_accounts WHERE id = $1`} {
			if _, err := w.db.Pool.Exec(ctx, q, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A process that has not seen the wallet made (this one remembers that
	// it opened the accounts).
	fresh := wallet.NewService(w.l)
	inv, _, err := ledger.Unpack(NewService(w.l, fresh, metering.NewService(w.l, fresh, nil), nil).CloseCycle(ctx, wl.ID))
	if err != nil {
		t.Fatal(err)
	}
	if !inv.Total.Equal(ledger.MustAmount("2.34")) || !inv.CarriedOut.Equal(ledger.MustAmount("0.005")) {
		t.Fatalf("invoice total %s carried %s, want 2.34 and 0.005", inv.Total, inv.CarriedOut)
	}
	var n int
	if err := w.db.Pool.QueryRow(ctx, `SELECT count(*) FROM ledger_accounts WHERE owner_id = $1 AND (code LIKE 'billable:%' OR code LIKE 'rounding:%')`, wl.ID).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d wallet accounts (%v), want 2", n, err)
	}
}
