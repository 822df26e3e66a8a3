package billing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/text"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

// An invoice's life: issued, then paid or void, once. Paying moves its
// total from the receivable to payments:received; voiding writes it off to
// writeoff:invoices; both are ledger ops keyed by the invoice
// (invoice-paid:<id>, invoice-void:<id>), so asking again answers the same
// invoice, and the billing stage holds the invoice row FOR UPDATE while
// they decide, so a payment and a void cannot both win.

// Invoice statuses besides InvoiceIssued.
const (
	InvoicePaid = "paid"
	InvoiceVoid = "void"
	// InvoiceUpcoming marks a preview (Upcoming): nothing was issued.
	InvoiceUpcoming = "upcoming"
)

// Outbox topics (public webhook events) of an invoice's life.
const (
	TopicInvoicePaid   = "invoice.paid"
	TopicInvoiceVoided = "invoice.voided"
)

// Journal entry kinds.
const (
	KindInvoicePaid = "invoice_paid"
	KindInvoiceVoid = "invoice_void"
)

// CodeInvoiceClosed is the code of the conflict that refuses paying a void
// invoice or voiding a paid one.
const CodeInvoiceClosed = "invoice_closed"

// InvoiceLife is what an invoice gains once issued: its number and what
// became of it. Embedded in Invoice, so its fields are the invoice's.
type InvoiceLife struct {
	// Number is unique and increases per customer (NumberPrefix); null on
	// invoices issued before numbers existed, and on a preview.
	Number           *string    `json:"number"`
	PaidAt           *time.Time `json:"paid_at"`
	VoidedAt         *time.Time `json:"voided_at"`
	PaymentReference *string    `json:"payment_reference"`
	VoidReason       *string    `json:"void_reason"`
}

// lifeColumns are the invoices columns of InvoiceLife, read after
// invoiceSelect's others.
const lifeColumns = `number, paid_at, voided_at, payment_reference, void_reason`

// lifeTargets are where scanInvoice reads lifeColumns.
func (l *InvoiceLife) lifeTargets() []any {
	return []any{&l.Number, &l.PaidAt, &l.VoidedAt, &l.PaymentReference, &l.VoidReason}
}

func (l *InvoiceLife) utc() {
	for _, t := range []**time.Time{&l.PaidAt, &l.VoidedAt} {
		if *t != nil {
			u := (*t).UTC()
			*t = &u
		}
	}
}

// MarkPaid is the request to mark an invoice paid.
type MarkPaid struct {
	Reference string `json:"reference,omitempty"`
}

// VoidInvoice is the request to void an invoice.
type VoidInvoice struct {
	Reason string `json:"reason,omitempty"`
}

// maxLifeText bounds a payment reference or a void reason, in bytes.
const maxLifeText = 500

// lifeAccounts are an asset's accounts on the other side of a receivable
// that leaves: payments received, and amounts written off.
type lifeAccounts struct {
	receivable, payments, writeoff ledger.AccountID
}

// lifeAccountsOf returns asset's life accounts, creating them on first use
// as wallet.System does its own: hot, so payments of every customer do not
// queue on one row.
func (s *Service) lifeAccountsOf(ctx context.Context, asset string) (lifeAccounts, error) {
	sys, err := s.wallets.System(ctx, asset)
	if err != nil {
		return lifeAccounts{}, err
	}
	out := lifeAccounts{receivable: sys.Receivable()}
	for _, a := range []struct {
		dst  *ledger.AccountID
		code string
	}{
		{&out.payments, "payments:received"},
		{&out.writeoff, "writeoff:invoices"},
	} {
		acc, err := s.l.EnsureAccount(ctx, ledger.AccountSpec{Code: a.code, Asset: asset, Normal: ledger.Debit, Hot: true})
		if err != nil {
			return out, err
		}
		*a.dst = acc.ID
	}
	return out, nil
}

// lifeOp pays or voids one invoice.
type lifeOp struct {
	invoice  InvoiceID
	customer string // routes the op with the customer's others
	to       string // InvoicePaid or InvoiceVoid
	text     string // the payment reference or the void reason
	acc      lifeAccounts
}

func lifeKey(to string, id InvoiceID) string {
	if to == InvoicePaid {
		return "invoice-paid:" + id.String()
	}
	return "invoice-void:" + id.String()
}

func (o *lifeOp) Key() string      { return lifeKey(o.to, o.invoice) }
func (o *lifeOp) ShardKey() uint64 { return wallet.Route(o.customer) }
func (o *lifeOp) Module() string   { return moduleName }

func (o *lifeOp) Kind() string {
	if o.to == InvoicePaid {
		return KindInvoicePaid
	}
	return KindInvoiceVoid
}

// Fingerprint covers the invoice only: asking again, with another
// reference or reason, answers the invoice as it was paid or voided.
func (o *lifeOp) Fingerprint() []byte { return ledger.Fingerprint(o.Kind(), o.invoice) }

func (o *lifeOp) Declare(d *ledger.Decl) {
	d.Account(o.acc.receivable)
	d.Account(o.acc.payments)
	d.Account(o.acc.writeoff)
}

func (o *lifeOp) needs(_ context.Context, b ledger.StageBatch) error {
	s, err := stageOf(b)
	if err != nil {
		return err
	}
	s.wantInvoice(o.invoice)
	return nil
}

func (o *lifeOp) Apply(_ context.Context, b ledger.Batch) (any, error) {
	s, err := stageOf(b)
	if err != nil {
		return nil, err
	}
	inv := s.life.invoices[o.invoice]
	if inv == nil {
		return nil, fault.NotFoundf("no invoice %s", o.invoice)
	}
	switch {
	case inv.Status == o.to:
		return *inv, nil // what the first request did (its key was lost, or another asked)
	case inv.Status != InvoiceIssued:
		return nil, fault.Conflictf(CodeInvoiceClosed, "invoice %s is %s", o.invoice, inv.Status)
	}
	owner := ledger.OwnerID(o.invoice)
	what, other, topic := "paid", o.acc.payments, TopicInvoicePaid
	if o.to == InvoiceVoid {
		what, other, topic = "void", o.acc.writeoff, TopicInvoiceVoided
	}
	b.Describe(owner, "invoice "+invoiceName(inv)+" "+what, nil)
	// The total leaves the receivable (a credit invoice's comes back).
	if ps := move(other, o.acc.receivable, inv.Total); len(ps) > 0 {
		if err := b.Post(ps...); err != nil {
			return nil, err
		}
	}
	saved, wasChanged := *inv, s.life.changed[o.invoice]
	now := b.Now()
	inv.Status = o.to
	if o.to == InvoicePaid {
		inv.PaidAt, inv.PaymentReference = &now, nullText(o.text)
	} else {
		inv.VoidedAt, inv.VoidReason = &now, nullText(o.text)
	}
	s.life.changed[o.invoice] = true
	b.OnUndo(func() { *inv, s.life.changed[o.invoice] = saved, wasChanged })
	if err := b.Emit(topic, owner, *inv); err != nil {
		return nil, err
	}
	return *inv, nil
}

// invoiceName is how a journal entry names an invoice: its number, or its
// id before numbers.
func invoiceName(inv *Invoice) string {
	if inv.Number != nil {
		return *inv.Number
	}
	return inv.ID.String()
}

// move is amount from credit to debit, the other way when it is negative;
// nothing when it is zero.
func move(debit, credit ledger.AccountID, amount ledger.Amount) []ledger.Posting {
	switch amount.Sign() {
	case 1:
		return ledger.Postings(ledger.Transfer{Debit: debit, Credit: credit, Amount: amount})
	case -1:
		return ledger.Postings(ledger.Transfer{Debit: credit, Credit: debit, Amount: amount.Neg()})
	}
	return nil
}

func nullText(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// MarkPaid marks an invoice paid: its total moves from the receivable to
// payments:received and invoice.paid is sent. Asking again answers the
// paid invoice (replayed); a void invoice cannot be paid (Conflict).
//
// key, a client's Idempotency-Key, is accepted for uniformity with other
// POSTs; the invoice itself is the operation's key, so a retry under any
// key is answered the same.
func (s *Service) MarkPaid(ctx context.Context, key string, id InvoiceID, req MarkPaid) (ledger.Result[Invoice], error) {
	return s.live(ctx, id, InvoicePaid, "reference", req.Reference)
}

// Void voids an invoice: its total is written off to writeoff:invoices and
// invoice.voided is sent. Asking again answers the void invoice (replayed);
// a paid invoice cannot be voided (Conflict).
func (s *Service) Void(ctx context.Context, key string, id InvoiceID, req VoidInvoice) (ledger.Result[Invoice], error) {
	return s.live(ctx, id, InvoiceVoid, "reason", req.Reason)
}

func (s *Service) live(ctx context.Context, id InvoiceID, to, field, note string) (ledger.Result[Invoice], error) {
	if err := text.Check(field, note, maxLifeText); err != nil {
		var te *text.Error
		if errors.As(err, &te) {
			return ledger.Result[Invoice]{}, fault.Invalidf(te.Field, "%s", te.Detail)
		}
		return ledger.Result[Invoice]{}, err
	}
	// Who and in what currency never change: read outside the batch, to
	// route the op and name its accounts. Its status is the stage's to read.
	inv, err := s.Invoice(ctx, id)
	if err != nil {
		return ledger.Result[Invoice]{}, err
	}
	acc, err := s.lifeAccountsOf(ctx, inv.Currency)
	if err != nil {
		return ledger.Result[Invoice]{}, err
	}
	op := &lifeOp{invoice: id, customer: inv.CustomerID, to: to, text: note, acc: acc}
	return ledger.Answer[Invoice](s.l.Submit(ctx, op))
}

// lifeBook is the stage's view of the invoices its batch's ops pay or
// void, locked while it loads.
type lifeBook struct {
	wanted   []InvoiceID
	invoices map[InvoiceID]*Invoice
	changed  map[InvoiceID]bool
}

func (s *stage) wantInvoice(id InvoiceID) { s.life.wanted = append(s.life.wanted, id) }

// loadLife locks what the batch's ops asked for: the number counters, then
// the invoices they pay or void (in id order, one query).
func (s *stage) loadLife(ctx context.Context, b ledger.StageBatch) error {
	if err := s.loadNumbers(ctx, b); err != nil {
		return err
	}
	s.life.invoices, s.life.changed = map[InvoiceID]*Invoice{}, map[InvoiceID]bool{}
	if len(s.life.wanted) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, 0, len(s.life.wanted))
	for _, id := range s.life.wanted {
		ids = append(ids, uuid.UUID(id))
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	ids = slices.Compact(ids)
	rows, err := b.Tx().Query(ctx, invoiceSelect+` WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids)
	if err != nil {
		return fmt.Errorf("lock invoices: %w", err)
	}
	invs, err := pg.Collect(rows, scanInvoice)
	if err != nil {
		return fmt.Errorf("lock invoices: %w", err)
	}
	for i := range invs {
		s.life.invoices[invs[i].ID] = &invs[i]
	}
	return nil
}

// flushLife writes the invoices the batch paid or voided, with one
// statement.
func (s *stage) flushLife(ctx context.Context, b ledger.StageBatch) error {
	var (
		ids              []uuid.UUID
		status           []string
		paidAt, voidedAt []*time.Time
		refs, reasons    []*string
	)
	for id, moved := range s.life.changed {
		if !moved {
			continue
		}
		inv := s.life.invoices[id]
		ids, status = append(ids, uuid.UUID(id)), append(status, inv.Status)
		paidAt, voidedAt = append(paidAt, inv.PaidAt), append(voidedAt, inv.VoidedAt)
		refs, reasons = append(refs, inv.PaymentReference), append(reasons, inv.VoidReason)
	}
	if len(ids) == 0 {
		return nil
	}
	if _, err := b.Tx().Exec(ctx, `UPDATE invoices SET status = u.status, paid_at = u.paid_at, voided_at = u.voided_at,
			payment_reference = u.ref, void_reason = u.reason
		FROM unnest($1::UUID[], $2::TEXT[], $3::TIMESTAMPTZ[], $4::TIMESTAMPTZ[], $5::TEXT[], $6::TEXT[])
			AS u(id, status, paid_at, voided_at, ref, reason)
		WHERE invoices.id = u.id`, ids, status, paidAt, voidedAt, refs, reasons); err != nil {
		return fmt.Errorf("update invoices: %w", err)
	}
	return nil
}
