package billing

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

// walletOf makes customer id (exactly) and a CREDITS wallet allowing overage.
func (w *world) walletOf(t *testing.T, id string) wallet.Wallet {
	t.Helper()
	ctx := context.Background()
	if _, err := w.wallets.CreateCustomer(ctx, wallet.Customer{ID: id, Name: "Customer " + id}); err != nil {
		t.Fatal(err)
	}
	wl, err := w.wallets.CreateWallet(ctx, wallet.NewWallet{CustomerID: id, Asset: "CREDITS", OveragePolicy: wallet.PolicyAllow})
	if err != nil {
		t.Fatal(err)
	}
	return wl
}

func (w *world) counter(t *testing.T, prefix string) int64 {
	t.Helper()
	var n int64
	if err := w.db.Pool.QueryRow(context.Background(), `SELECT last_number FROM invoice_counters WHERE prefix = $1`, prefix).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Two customers whose ids give one prefix share its sequence: every number
// is unique, and each customer's increase.
func TestInvoiceNumbersPerPrefix(t *testing.T) {
	w := newWorld(t)
	tag := strings.ToLower(unique("n"))
	a, b := w.walletOf(t, "shp-"+tag), w.walletOf(t, "SHP_"+tag)
	prefix := NumberPrefix(a.CustomerID)
	if NumberPrefix(b.CustomerID) != prefix {
		t.Fatalf("prefixes %s and %s differ", prefix, NumberPrefix(b.CustomerID))
	}
	var got []string
	perCustomer := map[string][]int64{}
	for i, wl := range []wallet.Wallet{a, b, a, b, a} {
		w.mustDebit(t, wl.ID, "1.5")
		inv := w.closeCycle(t, wl.ID)
		if inv.Number == nil {
			t.Fatalf("close %d: no number", i)
		}
		n, ok := numberOf(*inv.Number)
		if !ok || !strings.HasPrefix(*inv.Number, prefix+"-") {
			t.Fatalf("close %d: number %q", i, *inv.Number)
		}
		got = append(got, *inv.Number)
		perCustomer[wl.CustomerID] = append(perCustomer[wl.CustomerID], n)
		// The stored invoice carries it too.
		if back, err := w.bills.Invoice(context.Background(), inv.ID); err != nil || back.Number == nil || *back.Number != *inv.Number {
			t.Fatalf("read back %v %v", back.Number, err)
		}
		w.clock.Advance(32 * 24 * time.Hour)
	}
	want := []string{prefix + "-0001", prefix + "-0002", prefix + "-0003", prefix + "-0004", prefix + "-0005"}
	if !slices.Equal(got, want) {
		t.Fatalf("numbers %v, want %v", got, want)
	}
	for c, ns := range perCustomer {
		if !slices.IsSorted(ns) || len(slices.Compact(slices.Clone(ns))) != len(ns) {
			t.Fatalf("customer %s: numbers %v do not increase", c, ns)
		}
	}
	if n := w.counter(t, prefix); n != 5 {
		t.Fatalf("counter %d, want 5", n)
	}
	// The invoice.created webhook carries the number.
	ev := w.outbox(t, a.ID, TopicInvoiceCreated)
	if len(ev) != 3 || ev[0].Data["number"] != prefix+"-0001" {
		t.Fatalf("invoice.created %v", ev)
	}
}

// Closes of one cycle racing in two processes, and of two customers of one
// new prefix racing in two processes: one invoice per cycle, one number
// per invoice, no number twice.
func TestConcurrentClosesNumberOnce(t *testing.T) {
	w := newWorld(t)
	other := worldOn(t, w.db) // a second process on the same database
	ctx := context.Background()

	wl := w.wallet(t, wallet.PolicyAllow)
	w.mustDebit(t, wl.ID, "3")
	tag := strings.ToLower(unique("c"))
	x, y := w.walletOf(t, "dup-"+tag), w.walletOf(t, "dup."+tag)
	w.mustDebit(t, x.ID, "1")
	w.mustDebit(t, y.ID, "2")

	type closed struct {
		inv Invoice
		err error
	}
	var (
		mu  sync.Mutex
		out = map[wallet.WalletID][]closed{}
		wg  sync.WaitGroup
	)
	for _, svc := range []*Service{w.bills, other.bills} {
		for _, id := range []wallet.WalletID{wl.ID, wl.ID, x.ID, y.ID} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				inv, _, err := ledger.Unpack(svc.CloseCycle(ctx, id))
				mu.Lock()
				out[id] = append(out[id], closed{inv, err})
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	numbers := map[string]wallet.WalletID{}
	for id, cs := range out {
		for _, c := range cs {
			if c.err != nil {
				t.Fatalf("close %s: %v", id, c.err)
			}
			if c.inv.ID != cs[0].inv.ID || c.inv.Number == nil || *c.inv.Number != *cs[0].inv.Number {
				t.Fatalf("wallet %s: closes answered %s %v and %s %v", id, c.inv.ID, c.inv.Number, cs[0].inv.ID, cs[0].inv.Number)
			}
		}
		if prev, dup := numbers[*cs[0].inv.Number]; dup {
			t.Fatalf("number %s issued to wallets %s and %s", *cs[0].inv.Number, prev, id)
		}
		numbers[*cs[0].inv.Number] = id
		var n int
		if err := w.db.Pool.QueryRow(ctx, `SELECT count(*) FROM invoices WHERE wallet_id = $1`, id).Scan(&n); err != nil || n != 1 {
			t.Fatalf("wallet %s: %d invoices (%v)", id, n, err)
		}
	}
	if n := w.counter(t, NumberPrefix(wl.CustomerID)); n != 1 {
		t.Fatalf("the racing cycle's counter is %d, want 1", n)
	}
	if n := w.counter(t, NumberPrefix(x.CustomerID)); n != 2 {
		t.Fatalf("the shared prefix's counter is %d, want 2", n)
	}
}

// postingsOf are the postings of the entry recorded under key, as
// "code side amount".
func (w *world) postingsOf(t *testing.T, key string) []string {
	t.Helper()
	rows, err := w.db.Pool.Query(context.Background(), `SELECT a.code, p.direction, p.amount FROM ledger_postings p
		JOIN ledger_entries e ON e.id = p.entry_id JOIN ledger_accounts a ON a.id = p.account_id
		WHERE e.idempotency_key = $1 ORDER BY p.seq`, key)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var (
			code, dir string
			amt       ledger.Amount
		)
		if err := rows.Scan(&code, &dir, &amt); err != nil {
			t.Fatal(err)
		}
		out = append(out, code+" "+dir+" "+amt.String())
	}
	return out
}

func TestMarkPaidAndVoid(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	wl := w.wallet(t, wallet.PolicyAllow)
	w.mustDebit(t, wl.ID, "7.345678")
	inv := w.closeCycle(t, wl.ID) // 7.34 billed

	paid, replayed, err := ledger.Unpack(w.bills.MarkPaid(ctx, "", inv.ID, MarkPaid{Reference: "wire-42"}))
	if err != nil || replayed {
		t.Fatalf("mark paid: %v replayed=%v", err, replayed)
	}
	if paid.Status != InvoicePaid || paid.PaidAt == nil || paid.PaymentReference == nil || *paid.PaymentReference != "wire-42" ||
		paid.Number == nil || *paid.Number != *inv.Number {
		t.Fatalf("paid invoice %+v", paid)
	}
	want := []string{"payments:received debit 7.34", "receivable:invoices credit 7.34"}
	if got := w.postingsOf(t, "invoice-paid:"+inv.ID.String()); !slices.Equal(got, want) {
		t.Fatalf("postings %v, want %v", got, want)
	}
	// Asked again, with another reference: the same answer, replayed.
	again, replayed, err := ledger.Unpack(w.bills.MarkPaid(ctx, "http:other", inv.ID, MarkPaid{Reference: "other"}))
	if err != nil || !replayed || *again.PaymentReference != "wire-42" || !again.PaidAt.Equal(*paid.PaidAt) {
		t.Fatalf("again: %+v %v replayed=%v", again, err, replayed)
	}
	if _, err := w.bills.Void(ctx, "", inv.ID, VoidInvoice{}); !errors.Is(err, fault.Conflict) {
		t.Fatalf("void after paid: %v, want a conflict", err)
	}
	stored, err := w.bills.Invoice(ctx, inv.ID)
	if err != nil || stored.Status != InvoicePaid || stored.PaidAt == nil || *stored.PaymentReference != "wire-42" || stored.VoidedAt != nil {
		t.Fatalf("stored %+v %v", stored, err)
	}
	owner := ledger.OwnerID(inv.ID)
	if ev := w.outbox(t, owner, TopicInvoicePaid); len(ev) != 1 || ev[0].Data["status"] != InvoicePaid || ev[0].Data["number"] != *inv.Number {
		t.Fatalf("invoice.paid %v", ev)
	}

	// The next cycle's invoice is voided, then cannot be paid.
	w.clock.Advance(32 * 24 * time.Hour)
	w.mustDebit(t, wl.ID, "2")
	second := w.closeCycle(t, wl.ID) // 2 + the 0.005678 carried: 2.00
	void, _, err := ledger.Unpack(w.bills.Void(ctx, "", second.ID, VoidInvoice{Reason: "goodwill"}))
	if err != nil || void.Status != InvoiceVoid || void.VoidedAt == nil || *void.VoidReason != "goodwill" {
		t.Fatalf("void: %+v %v", void, err)
	}
	want = []string{"writeoff:invoices debit " + second.Total.String(), "receivable:invoices credit " + second.Total.String()}
	if got := w.postingsOf(t, "invoice-void:"+second.ID.String()); !slices.Equal(got, want) {
		t.Fatalf("postings %v, want %v", got, want)
	}
	if again, replayed, err := ledger.Unpack(w.bills.Void(ctx, "", second.ID, VoidInvoice{})); err != nil || !replayed || again.Status != InvoiceVoid {
		t.Fatalf("void again: %+v %v %v", again, replayed, err)
	}
	if _, err := w.bills.MarkPaid(ctx, "", second.ID, MarkPaid{}); !errors.Is(err, fault.Conflict) {
		t.Fatalf("paid after void: %v, want a conflict", err)
	}
	if ev := w.outbox(t, ledger.OwnerID(second.ID), TopicInvoiceVoided); len(ev) != 1 {
		t.Fatalf("invoice.voided %v", ev)
	}

	// A zero invoice is paid with no posting.
	w.clock.Advance(32 * 24 * time.Hour)
	zero := w.closeCycle(t, wl.ID)
	if !zero.Total.IsZero() {
		t.Fatalf("zero invoice total %s", zero.Total)
	}
	if z, _, err := ledger.Unpack(w.bills.MarkPaid(ctx, "", zero.ID, MarkPaid{})); err != nil || z.Status != InvoicePaid || z.PaymentReference != nil {
		t.Fatalf("zero paid: %+v %v", z, err)
	}
	if got := w.postingsOf(t, "invoice-paid:"+zero.ID.String()); len(got) != 0 {
		t.Fatalf("a zero invoice posted %v", got)
	}

	// Bad input and unknown invoices.
	if _, err := w.bills.MarkPaid(ctx, "", inv.ID, MarkPaid{Reference: "a\x00b"}); fault.FieldOf(err) != "reference" {
		t.Fatalf("NUL in reference: %v", err)
	}
	if _, err := w.bills.Void(ctx, "", second.ID, VoidInvoice{Reason: strings.Repeat("x", 501)}); fault.FieldOf(err) != "reason" {
		t.Fatalf("long reason: %v", err)
	}
	if _, err := w.bills.MarkPaid(ctx, "", InvoiceID{1}, MarkPaid{}); !errors.Is(err, fault.NotFound) {
		t.Fatalf("unknown invoice: %v", err)
	}

	// The lists filter by status and period.
	list, _, err := w.bills.ListInvoices(ctx, InvoiceFilter{CustomerID: wl.CustomerID, Status: InvoicePaid}, nil, 50)
	if err != nil || len(list) != 2 || list[0].ID != zero.ID || list[1].ID != inv.ID {
		t.Fatalf("paid list %v %v", ids(list), err)
	}
	from := second.PeriodStart
	list, _, err = w.bills.ListInvoices(ctx, InvoiceFilter{CustomerID: wl.CustomerID, From: &from, To: &zero.PeriodStart}, nil, 50)
	if err != nil || len(list) != 1 || list[0].ID != second.ID {
		t.Fatalf("period list %v %v", ids(list), err)
	}
	if _, _, err := w.bills.ListInvoices(ctx, InvoiceFilter{Status: "open"}, nil, 50); fault.FieldOf(err) != "status" {
		t.Fatalf("bad status: %v", err)
	}
	all, _, err := w.bills.ListInvoices(ctx, InvoiceFilter{}, nil, 500)
	if err != nil || !slices.ContainsFunc(all, func(i Invoice) bool { return i.ID == second.ID }) {
		t.Fatalf("every customer's list lacks the void invoice: %v", err)
	}
}

func ids(invs []Invoice) []string {
	var out []string
	for _, i := range invs {
		out = append(out, i.ID.String())
	}
	return out
}
