package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

// closeCycleOp closes one monthly billing cycle of a wallet whose customer
// has no subscription, and issues its invoice in the wallet's asset. Its
// key names the cycle, so the cycle closes once however many times it is
// asked (the API, the scheduler, two processes).
type closeCycleOp struct {
	wallet     wallet.Wallet
	sys        wallet.SystemAccounts
	start, end time.Time
	money      *moneyClose // a priced credits wallet: invoiced in money (money.go)
}

func cycleKey(w wallet.WalletID, start time.Time) string {
	return "close-cycle:" + w.String() + ":" + start.UTC().Format(time.RFC3339Nano)
}

func (o *closeCycleOp) Key() string      { return cycleKey(o.wallet.ID, o.start) }
func (o *closeCycleOp) Kind() string     { return KindInvoice }
func (o *closeCycleOp) ShardKey() uint64 { return wallet.Route(o.wallet.CustomerID) }
func (o *closeCycleOp) Module() string   { return moduleName }

// Fingerprint covers the wallet and the cycle, as it did when cycles were
// the wallet package's: a close stored then replays now.
func (o *closeCycleOp) Fingerprint() []byte {
	return ledger.Fingerprint(o.Kind(), struct {
		W          wallet.WalletID
		Start, End time.Time
	}{o.wallet.ID, o.start, o.end})
}

func (o *closeCycleOp) Declare(d *ledger.Decl) {
	if o.money != nil {
		o.money.acc.Declare(d)
	}
	d.Account(o.sys.Receivable())
	d.Account(wallet.RoundingAccount(o.wallet.ID))
}

func (o *closeCycleOp) needs(_ context.Context, b ledger.StageBatch) error {
	if err := wantNumber(b, o.wallet.CustomerID); err != nil {
		return err
	}
	return wallet.WantSettle(b, o.wallet.ID)
}

func (o *closeCycleOp) Apply(_ context.Context, b ledger.Batch) (any, error) {
	s, err := stageOf(b)
	if err != nil {
		return nil, err
	}
	w := o.wallet
	b.Describe(w.ID, "invoice "+o.start.Format(time.DateOnly)+" – "+o.end.Format(time.DateOnly), nil)
	wid := w.ID
	inv := Invoice{ID: InvoiceID(uuid.New()), WalletID: &wid, CustomerID: w.CustomerID, Currency: w.Asset,
		MinorUnits: MinorUnits(w.Asset), PeriodStart: o.start, PeriodEnd: o.end,
		Status: InvoiceIssued, EntryID: b.EntryID(), CreatedAt: b.Now()}
	if o.money != nil {
		err = o.money.invoice(b, w.ID, &inv)
	} else {
		err = o.invoiceInAsset(b, &inv)
	}
	if err != nil {
		return nil, err
	}
	if inv.Lines == nil {
		inv.Lines = []InvoiceLine{}
	}
	if err := s.issue(b, &inv); err != nil {
		return nil, err
	}
	// The next cycle to close is the one after this; an early close moves
	// the scheduler past the cycle it closed.
	_, after := wallet.Cycle(w.CreatedAt, o.end)
	if err := wallet.ScheduleClose(b, w.ID, after); err != nil {
		return nil, err
	}
	if err := b.Emit(TopicInvoiceCreated, w.ID, inv); err != nil {
		return nil, err
	}
	return inv, nil
}

// invoiceInAsset settles the wallet into the asset's receivable and fills
// inv in the asset: an unpriced wallet's invoice.
func (o *closeCycleOp) invoiceInAsset(b ledger.Batch, inv *Invoice) error {
	w := o.wallet
	rounding, ok := b.Account(wallet.RoundingAccount(w.ID))
	if !ok {
		return fmt.Errorf("rounding account of wallet %s not locked", w.ID)
	}
	inv.CarriedIn = rounding.Posted(ledger.Debit)
	st, err := wallet.Settle(b, w.ID, o.sys.Receivable(), inv.ID)
	if err != nil {
		return err
	}
	inv.Lines = linesOf(st)
	inv.Subtotal = st.Overage.Add(st.Billable)
	if inv.Total, inv.CarriedOut, err = round(inv.Subtotal, inv.CarriedIn, inv.MinorUnits); err != nil {
		return err
	}
	if ps := carry(o.sys.Receivable(), wallet.RoundingAccount(w.ID), inv.CarriedIn, inv.CarriedOut); len(ps) > 0 {
		return b.Post(ps...)
	}
	return nil
}

// CloseCycle closes the wallet's current billing cycle now and issues its
// invoice. Asking again in the same cycle returns the same invoice
// (replayed). Usage after an early close is billed with the next cycle.
func (s *Service) CloseCycle(ctx context.Context, id wallet.WalletID) (ledger.Result[Invoice], error) {
	w, err := s.wallets.Wallet(ctx, id)
	if err != nil {
		return ledger.Result[Invoice]{}, err
	}
	if sub, err := s.activeSubscription(ctx, w.CustomerID); err != nil {
		return ledger.Result[Invoice]{}, err
	} else if sub != nil {
		return ledger.Result[Invoice]{}, fault.Conflictf("", "customer %q is billed by subscription %s: close its period (POST /v1/subscriptions/%s/close-period)",
			w.CustomerID, sub.ID, sub.ID)
	}
	start, end := wallet.Cycle(w.CreatedAt, s.l.Now())
	op, err := s.closeCycleOp(ctx, w, start, end)
	if err != nil {
		return ledger.Result[Invoice]{}, err
	}
	return ledger.Answer[Invoice](s.l.Submit(ctx, op))
}

func (s *Service) closeCycleOp(ctx context.Context, w wallet.Wallet, start, end time.Time) (*closeCycleOp, error) {
	if err := s.wallets.EnsureAccounts(ctx, w); err != nil {
		return nil, err
	}
	sys, err := s.wallets.System(ctx, w.Asset)
	if err != nil {
		return nil, err
	}
	op := &closeCycleOp{wallet: w, sys: sys, start: start, end: end}
	if op.money, err = s.moneyClose(ctx, w, start); err != nil {
		return nil, err
	}
	return op, nil
}

// CloseDueCycles closes the wallet cycles whose end has passed (the
// scheduler). Several schedulers may run: the cycle's key makes each close
// once. All due closes are enqueued before any is waited for, so they
// share batches.
//
// Wallets made before next_cycle_end existed have none: their first
// cycle's end stands in for it, and closing it sets the column, so they
// catch up one cycle per pass like any wallet whose server was down.
func (s *Service) CloseDueCycles(ctx context.Context) (int, error) {
	now := s.l.Now()
	due, err := s.wallets.DueCloses(ctx, now, 500)
	if err != nil {
		return 0, err
	}
	pend := make([]*ledger.Pending, 0, len(due))
	for _, d := range due {
		end := d.End
		if end == nil {
			_, first := wallet.Cycle(d.Wallet.CreatedAt, d.Wallet.CreatedAt)
			if first.After(now) {
				continue // a month's length in SQL is not the calendar's
			}
			end = &first
		}
		// The cycle that ended at next_cycle_end; a server down for months
		// catches up one cycle per pass.
		start, stop := wallet.Cycle(d.Wallet.CreatedAt, end.Add(-time.Microsecond))
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
