package wallet

import (
	"context"
	"fmt"
	"time"

	"github.com/creditledger/creditledger/ledger"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// closeCycleOp closes one billing cycle of a wallet and issues its invoice.
// Its key names the cycle, so the cycle closes once however many times it is
// asked (the API, the scheduler, two processes).
type closeCycleOp struct {
	base
	start, end time.Time
}

// needs asks for the wallet's open invoice lines and billable top-ups.
func (o *closeCycleOp) needs(n *need) {
	o.base.needs(n)
	n.closing = append(n.closing, uuid.UUID(o.walletID))
}

func (o *closeCycleOp) Kind() string { return KindInvoice }

func (o *closeCycleOp) Fingerprint() []byte {
	return ledger.Fingerprint(o.Kind(), struct {
		W          WalletID
		Start, End time.Time
	}{o.walletID, o.start, o.end})
}

func (o *closeCycleOp) Declare(d *ledger.Decl) {
	d.Account(o.sys.receivable)
	d.Account(billableAccount(o.walletID))
	d.Account(roundingAccount(o.walletID))
}

func cycleKey(w WalletID, start time.Time) string {
	return "close-cycle:" + w.String() + ":" + start.UTC().Format(time.RFC3339Nano)
}

func (o *closeCycleOp) Apply(_ context.Context, b ledger.Batch) (any, error) {
	s, w, err := walletFor(b, o.walletID)
	if err != nil {
		return nil, err
	}
	balance := func(id ledger.AccountID) (ledger.Amount, error) {
		acc, ok := b.Account(id)
		if !ok {
			return ledger.Zero, fmt.Errorf("account %s of wallet %s not locked", id, w.ID)
		}
		return acc.Posted(ledger.Debit), nil
	}
	overage, err := balance(w.overage)
	if err != nil {
		return nil, err
	}
	billable, err := balance(billableAccount(w.ID))
	if err != nil {
		return nil, err
	}
	carriedIn, err := balance(roundingAccount(w.ID))
	if err != nil {
		return nil, err
	}
	b.Describe(w.ID, "invoice "+o.start.Format(time.DateOnly)+" – "+o.end.Format(time.DateOnly), nil)

	inv := Invoice{ID: InvoiceID(uuid.New()), WalletID: w.ID, CustomerID: w.CustomerID, Currency: w.Asset,
		MinorUnits: MinorUnits(w.Asset), PeriodStart: o.start, PeriodEnd: o.end, Lines: []InvoiceLine{},
		CarriedIn: carriedIn, Status: InvoiceIssued, EntryID: b.EntryID(), CreatedAt: b.Now()}
	var usage, topups ledger.Amount
	for _, l := range s.openLines(w.ID) {
		if l.amount.IsZero() {
			continue
		}
		price := l.amount.Decimal()
		switch {
		case l.unitPrice != nil:
			price = *l.unitPrice
		case !l.quantity.IsZero():
			price = l.amount.Decimal().DivRound(l.quantity, ledger.Scale)
		}
		inv.Lines = append(inv.Lines, InvoiceLine{Kind: LineUsage, Description: l.description, Quantity: l.quantity, UnitPrice: price, Amount: l.amount})
		usage = usage.Add(l.amount)
	}
	// The receivable is the authority: what the lines do not explain came
	// from debits and hold captures.
	if rest := overage.Sub(usage); !rest.IsZero() {
		inv.Lines = append(inv.Lines, InvoiceLine{Kind: LineDebits, Description: "Debits and captures not covered by credits",
			Quantity: decimal.NewFromInt(1), UnitPrice: rest.Decimal(), Amount: rest})
	}
	for _, t := range s.topups.billable[w.ID] {
		id := t.ID
		inv.Lines = append(inv.Lines, InvoiceLine{Kind: LineTopup, Description: "Auto top-up " + t.CreatedAt.Format(time.DateOnly),
			Quantity: decimal.NewFromInt(1), UnitPrice: t.Amount.Decimal(), Amount: t.Amount, TopupID: &id})
		topups = topups.Add(t.Amount)
	}
	if rest := billable.Sub(topups); !rest.IsZero() {
		inv.Lines = append(inv.Lines, InvoiceLine{Kind: LineAdjustment, Description: "Voided top-up credits",
			Quantity: decimal.NewFromInt(1), UnitPrice: rest.Decimal(), Amount: rest})
	}
	inv.Subtotal = overage.Add(billable)
	exact := inv.Subtotal.Add(carriedIn)
	total, err := ledger.NewAmount(exact.Decimal().Truncate(inv.MinorUnits))
	if err != nil {
		return nil, err
	}
	inv.Total, inv.CarriedOut = total, exact.Sub(total)

	// Settle the receivables into the invoice; move the carry.
	var ts []ledger.Transfer
	for _, t := range []ledger.Transfer{
		{Debit: o.sys.receivable, Credit: w.overage, Amount: overage},
		{Debit: o.sys.receivable, Credit: billableAccount(w.ID), Amount: billable},
		{Debit: o.sys.receivable, Credit: roundingAccount(w.ID), Amount: carriedIn},
		{Debit: roundingAccount(w.ID), Credit: o.sys.receivable, Amount: inv.CarriedOut},
	} {
		switch t.Amount.Sign() {
		case 1:
			ts = append(ts, t)
		case -1: // a credit: the transfer the other way
			ts = append(ts, ledger.Transfer{Debit: t.Credit, Credit: t.Debit, Amount: t.Amount.Neg()})
		}
	}
	if len(ts) > 0 {
		if err := b.Post(ledger.Postings(ts...)...); err != nil {
			return nil, err
		}
	}
	s.issue(b, w, &inv)
	// The next cycle to close is the one after this; an early close moves
	// the scheduler past the cycle it closed.
	if _, after := Cycle(w.CreatedAt, o.end); w.nextCycleEnd == nil || w.nextCycleEnd.Before(after) {
		saved := w.nextCycleEnd
		w.nextCycleEnd = &after
		s.cycles.moved[w] = struct{}{}
		b.OnUndo(func() { w.nextCycleEnd = saved })
	}
	if err := b.Emit(TopicInvoiceCreated, w.ID, inv); err != nil {
		return nil, err
	}
	if err := s.react(b, w); err != nil {
		return nil, err
	}
	return inv, nil
}

// CloseCycle closes the wallet's current billing cycle now and issues its
// invoice. Asking again in the same cycle returns the same invoice
// (replayed). Usage after an early close is billed with the next cycle.
func (s *Service) CloseCycle(ctx context.Context, id WalletID) (ledger.Result[Invoice], error) {
	w, err := s.Wallet(ctx, id)
	if err != nil {
		return ledger.Result[Invoice]{}, err
	}
	start, end := Cycle(w.CreatedAt, s.now())
	return s.closeCycle(ctx, w, start, end)
}

func (s *Service) closeCycle(ctx context.Context, w Wallet, start, end time.Time) (ledger.Result[Invoice], error) {
	op, err := s.closeCycleOp(ctx, w, start, end)
	if err != nil {
		return ledger.Result[Invoice]{}, err
	}
	return submit[Invoice](ctx, s, op)
}

func (s *Service) closeCycleOp(ctx context.Context, w Wallet, start, end time.Time) (*closeCycleOp, error) {
	if err := s.ensureWalletAccounts(ctx, w); err != nil {
		return nil, err
	}
	sys, err := s.System(ctx, w.Asset)
	if err != nil {
		return nil, err
	}
	return &closeCycleOp{base: base{key: cycleKey(w.ID, start), walletID: w.ID, customer: w.CustomerID, sys: sys},
		start: start, end: end}, nil
}

// CloseDueCycles closes the cycles whose end has passed (the scheduler).
// Several schedulers may run: the cycle's key makes each close once. All
// due closes are enqueued before any is waited for, so they share batches.
//
// Wallets made before next_cycle_end existed have none: their first
// cycle's end stands in for it, and closing it sets the column, so they
// catch up one cycle per pass like any wallet whose server was down.
func (s *Service) CloseDueCycles(ctx context.Context) (int, error) {
	now := s.now()
	rows, err := s.db.Pool.Query(ctx, `SELECT `+walletColumns+`, w.next_cycle_end FROM wallets w
		WHERE w.next_cycle_end <= $1 OR (w.next_cycle_end IS NULL AND w.created_at <= $2)
		ORDER BY COALESCE(w.next_cycle_end, w.created_at) LIMIT 500`, now, now.AddDate(0, -1, 0))
	if err != nil {
		return 0, fmt.Errorf("find due cycles: %w", err)
	}
	type dueWallet struct {
		Wallet
		end *time.Time
	}
	due, err := collect(rows, func(r pgx.Row) (dueWallet, error) {
		var d dueWallet
		w, _, err := scanWallet(r, &d.end)
		d.Wallet = w
		return d, err
	})
	if err != nil {
		return 0, fmt.Errorf("find due cycles: %w", err)
	}
	pend := make([]*ledger.Pending, 0, len(due))
	for _, d := range due {
		end := d.end
		if end == nil {
			_, first := Cycle(d.CreatedAt, d.CreatedAt)
			if first.After(now) {
				continue // a month's length in SQL is not the calendar's
			}
			end = &first
		}
		// The cycle that ended at next_cycle_end; a server down for months
		// catches up one cycle per pass.
		start, stop := Cycle(d.CreatedAt, end.Add(-time.Microsecond))
		op, err := s.closeCycleOp(ctx, d.Wallet, start, stop)
		if err != nil {
			return 0, err
		}
		p, err := s.l.Enqueue(ctx, op)
		if err != nil {
			return 0, err
		}
		pend = append(pend, p)
	}
	n, err := ledger.WaitPosted(ctx, pend)
	if err != nil {
		return n, fmt.Errorf("close cycles: %w", err)
	}
	return n, nil
}

// Cycle returns the monthly billing cycle anchored at anchor that contains
// t: [start, end). A cycle anchored on the 31st ends on the last day of
// shorter months rather than spilling into the next (Go's AddDate would
// turn 31 January + 1 month into 3 March).
func Cycle(anchor, t time.Time) (start, end time.Time) {
	anchor, t = anchor.UTC(), t.UTC()
	months := (t.Year()-anchor.Year())*12 + int(t.Month()-anchor.Month())
	start = addMonths(anchor, months)
	if start.After(t) {
		months--
		start = addMonths(anchor, months)
	}
	return start, addMonths(anchor, months+1)
}

func addMonths(anchor time.Time, n int) time.Time {
	y, m := anchor.Year(), int(anchor.Month())-1+n
	y += m / 12
	m %= 12
	if m < 0 {
		m += 12
		y--
	}
	first := time.Date(y, time.Month(m+1), 1, anchor.Hour(), anchor.Minute(), anchor.Second(), anchor.Nanosecond(), time.UTC)
	last := first.AddDate(0, 1, -1).Day()
	return first.AddDate(0, 0, min(anchor.Day(), last)-1)
}
