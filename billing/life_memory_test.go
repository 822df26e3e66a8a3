package billing

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/ledger/ledgertest"
)

func TestNumberPrefix(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"acme", "ACME"},
		{"acme-corp", "ACMECORP"},
		{"Acme_Corp.2", "ACMECORP2"},
		{"cus_0123456789abcdef", "CUS012345678"},
		{"a.b:c@d-e_f", "ABCDEF"},
		{"-_.:@", "INV"},
		{"", "INV"},
	} {
		if got := NumberPrefix(tc.id); got != tc.want {
			t.Errorf("NumberPrefix(%q) = %q, want %q", tc.id, got, tc.want)
		}
	}
	for _, tc := range []struct {
		n    int64
		want string
	}{{1, "ACME-0001"}, {42, "ACME-0042"}, {9999, "ACME-9999"}, {10000, "ACME-10000"}} {
		if got := FormatNumber("ACME", tc.n); got != tc.want {
			t.Errorf("FormatNumber(ACME, %d) = %q, want %q", tc.n, got, tc.want)
		}
		if n, ok := numberOf(tc.want); !ok || n != tc.n {
			t.Errorf("numberOf(%q) = %d %v", tc.want, n, ok)
		}
	}
}

// lifeBatch is an in-memory batch with a billing stage holding inv, as
// the stage's Load would have left it, and an asset's life accounts.
func lifeBatch(t *testing.T, inv Invoice) (*ledgertest.Batch, *stage, lifeAccounts) {
	b := ledgertest.NewBatch(t, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	s := &stage{life: lifeBook{invoices: map[InvoiceID]*Invoice{inv.ID: &inv}, changed: map[InvoiceID]bool{}},
		numbers: numberBook{last: map[string]int64{"ACME": 6}, changed: map[string]bool{}}}
	b.SetStage(Module(), s)
	var acc lifeAccounts
	for _, a := range []struct {
		dst  *ledger.AccountID
		code string
	}{{&acc.receivable, "receivable:invoices"}, {&acc.payments, "payments:received"}, {&acc.writeoff, "writeoff:invoices"}} {
		*a.dst = b.Open(ledger.AccountSpec{Code: a.code, Asset: inv.Currency, Normal: ledger.Debit, Hot: true}, ledger.Balance{}).ID
	}
	return b, s, acc
}

// The rules of paying and voiding, without a database: the total leaves
// the receivable (a credit invoice's comes back to it), a zero total posts
// nothing, a closed invoice refuses the other move and answers the same
// one again.
func TestInvoiceLifeRules(t *testing.T) {
	for _, tc := range []struct {
		name, total, to string
		wantOther       string // the balance of payments or write-off after
	}{
		{"paid", "7.34", InvoicePaid, "7.34"},
		{"void", "7.34", InvoiceVoid, "7.34"},
		{"a credit invoice paid back", "-2.5", InvoicePaid, "-2.5"},
		{"zero paid", "0", InvoicePaid, "0"},
		{"zero void", "0", InvoiceVoid, "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := Invoice{ID: InvoiceID(uuid.New()), CustomerID: "acme", Currency: "USD", Status: InvoiceIssued,
				Total: ledger.MustAmount(tc.total)}
			b, s, acc := lifeBatch(t, inv)
			op := &lifeOp{invoice: inv.ID, customer: "acme", to: tc.to, text: "ref-1", acc: acc}
			got := ledgertest.Posted[Invoice](b, op)
			if got.Status != tc.to || (tc.to == InvoicePaid) != (got.PaidAt != nil) || (tc.to == InvoiceVoid) != (got.VoidedAt != nil) {
				t.Fatalf("invoice after %s: %+v", tc.to, got)
			}
			if tc.to == InvoicePaid && (got.PaymentReference == nil || *got.PaymentReference != "ref-1") {
				t.Fatalf("payment reference %v", got.PaymentReference)
			}
			other := acc.payments
			if tc.to == InvoiceVoid {
				other = acc.writeoff
			}
			ob, _ := b.Balance(other)
			rb, _ := b.Balance(acc.receivable)
			if net := ob.DebitsPosted.Sub(ob.CreditsPosted); !net.Equal(ledger.MustAmount(tc.wantOther)) {
				t.Fatalf("other side moved %s, want %s", net, tc.wantOther)
			}
			if net := rb.CreditsPosted.Sub(rb.DebitsPosted); !net.Equal(ledger.MustAmount(tc.wantOther)) {
				t.Fatalf("receivable moved %s, want %s", net, tc.wantOther)
			}
			wantTopic := TopicInvoicePaid
			if tc.to == InvoiceVoid {
				wantTopic = TopicInvoiceVoided
			}
			if topics := b.Topics(); len(topics) != 1 || topics[0] != wantTopic {
				t.Fatalf("emitted %v, want [%s]", topics, wantTopic)
			}
			if !s.life.changed[inv.ID] {
				t.Fatal("the stage would not write the invoice")
			}
			// The same move again answers the invoice as it is; the other
			// is refused.
			again := ledgertest.Posted[Invoice](b, op)
			if again.Status != tc.to || len(b.Topics()) != 1 {
				t.Fatalf("again: %+v, topics %v", again, b.Topics())
			}
			otherTo := InvoiceVoid
			if tc.to == InvoiceVoid {
				otherTo = InvoicePaid
			}
			_, err := b.Memory.Apply(t.Context(), &lifeOp{invoice: inv.ID, customer: "acme", to: otherTo, acc: acc})
			if !errors.Is(err, fault.Conflict) {
				t.Fatalf("%s after %s: %v, want a conflict", otherTo, tc.to, err)
			}
		})
	}
}

// An op that fails after its invoice was numbered gives the number back:
// the next invoice takes it.
func TestNumberUndoneWithTheOp(t *testing.T) {
	b, s, _ := lifeBatch(t, Invoice{ID: InvoiceID(uuid.New()), Currency: "USD"})
	failing := &issueOp{customer: "acme", fail: true}
	if _, err := b.Memory.Apply(t.Context(), failing); err == nil {
		t.Fatal("the failing op did not fail")
	}
	if s.numbers.last["ACME"] != 6 || s.numbers.changed["ACME"] || len(s.invoices) != 0 {
		t.Fatalf("after the failed op: last %d changed %v, %d invoices", s.numbers.last["ACME"], s.numbers.changed["ACME"], len(s.invoices))
	}
	got := ledgertest.Posted[Invoice](b, &issueOp{customer: "acme"})
	if got.Number == nil || *got.Number != "ACME-0007" || !s.numbers.changed["ACME"] {
		t.Fatalf("number %v, want ACME-0007", got.Number)
	}
	// A customer the op did not ask a number for is a bug, not a number.
	if _, err := b.Memory.Apply(t.Context(), &issueOp{customer: "zeta"}); err == nil {
		t.Fatal("an invoice was numbered without wantNumber")
	}
}

// issueOp issues an empty invoice, then fails if told to.
type issueOp struct {
	customer string
	fail     bool
}

func (o *issueOp) Key() string            { return "test-issue:" + uuid.NewString() }
func (o *issueOp) Kind() string           { return KindInvoice }
func (o *issueOp) Fingerprint() []byte    { return nil }
func (o *issueOp) ShardKey() uint64       { return 0 }
func (o *issueOp) Module() string         { return moduleName }
func (o *issueOp) Declare(d *ledger.Decl) {}
func (o *issueOp) Apply(_ context.Context, b ledger.Batch) (any, error) {
	s, err := stageOf(b)
	if err != nil {
		return nil, err
	}
	inv := Invoice{ID: InvoiceID(uuid.New()), CustomerID: o.customer, Status: InvoiceIssued}
	if err := s.issue(b, &inv); err != nil {
		return nil, err
	}
	if o.fail {
		return nil, errors.New("failed after issuing")
	}
	return inv, nil
}
