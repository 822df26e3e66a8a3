package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

// Upcoming is what closing the customer's wallets' current cycles now
// would issue, one invoice per wallet, with nothing stored and nothing
// posted: each close is previewed (ledger.Preview) in a transaction that
// rolls back. The invoices are provisional: status "upcoming", number
// null, and an id and entry id that no stored row will ever have.
//
// A wallet whose current cycle was closed early has nothing to close now;
// its upcoming invoice is the next cycle's, which the scheduler issues
// when that cycle ends, previewed with what the wallet owes so far.
//
// A customer on a subscription has one upcoming invoice: its current
// period's, base fee, usage in money and commitment true-up as they stand
// (or, if the period was closed early, the next period's so far).
func (s *Service) Upcoming(ctx context.Context, customerID string) ([]Invoice, error) {
	ws, err := s.wallets.WalletsOf(ctx, customerID)
	if err != nil {
		return nil, err
	}
	if sub, err := s.activeSubscription(ctx, customerID); err != nil {
		return nil, err
	} else if sub != nil {
		inv, err := s.previewPeriod(ctx, sub, sub.CurrentPeriodStart, sub.CurrentPeriodEnd)
		if errors.Is(err, ledger.ErrApplied) {
			iv := Interval(Month)
			if p, err := s.Plan(ctx, sub.current().plan, 0); err == nil {
				iv = p.Interval
			}
			inv, err = s.previewPeriod(ctx, sub, sub.CurrentPeriodEnd, iv.add(sub.CurrentPeriodEnd, 1))
		}
		if err != nil {
			return nil, err
		}
		inv.Status, inv.Number = InvoiceUpcoming, nil
		return []Invoice{inv}, nil
	}
	out := []Invoice{}
	for _, w := range ws {
		start, end := wallet.Cycle(w.CreatedAt, s.l.Now())
		inv, err := s.previewClose(ctx, w, start, end)
		if errors.Is(err, ledger.ErrApplied) {
			start, end = wallet.Cycle(w.CreatedAt, end)
			inv, err = s.previewClose(ctx, w, start, end)
		}
		if err != nil {
			return nil, err
		}
		inv.Status, inv.Number = InvoiceUpcoming, nil
		out = append(out, inv)
	}
	return out, nil
}

func (s *Service) previewClose(ctx context.Context, w wallet.Wallet, start, end time.Time) (Invoice, error) {
	op, err := s.closeCycleOp(ctx, w, start, end)
	if err != nil {
		return Invoice{}, err
	}
	return s.preview(ctx, op)
}

func (s *Service) previewPeriod(ctx context.Context, sub *Subscription, start, end time.Time) (Invoice, error) {
	op, err := s.closePeriodOp(ctx, sub, start, end, end)
	if err != nil {
		return Invoice{}, err
	}
	return s.preview(ctx, op)
}

// preview runs a close through ledger.Preview: the invoice it would issue.
func (s *Service) preview(ctx context.Context, op ledger.Op) (Invoice, error) {
	v, err := s.l.Preview(ctx, op)
	if err != nil {
		return Invoice{}, err
	}
	inv, ok := v.(Invoice)
	if !ok {
		return Invoice{}, fmt.Errorf("preview of %s answered %T", op.Key(), v)
	}
	return inv, nil
}
