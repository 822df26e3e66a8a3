package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

// Invoice line types of a subscription's invoice, besides the wallet's.
const (
	LineBaseFee          = "base_fee"
	LineCommitmentTrueUp = "commitment_true_up"
)

// closePeriodOp issues a subscription period's invoice, in the plan's
// currency: the base fee, what each of the customer's wallets owes (its
// usage the credits did not cover, uncovered debits, unpaid top-ups),
// converted to money, and a commitment true-up when the period's total
// falls short of the plan's minimum. Its key names the period, so the
// period is invoiced once however many times it is asked; what happens
// after an early close is billed with the next period.
type closePeriodOp struct {
	subID      uuid.UUID
	customer   string
	currency   string
	start, end time.Time // the period
	// cut is when the period ends for its fees: its end, or the moment a
	// change of plan or a cancellation cut it short (the fee and the
	// commitment are prorated).
	cut      time.Time
	wallets  []wallet.Wallet
	sys      map[string]wallet.SystemAccounts // by wallet asset
	money    moneyAccounts
	rounding ledger.AccountID       // the customer's carry in the currency
	conv     map[string]*moneyClose // credits asset → how it becomes the currency
}

func periodKey(sub uuid.UUID, start time.Time) string {
	return "close-period:" + sub.String() + ":" + start.UTC().Format(time.RFC3339Nano)
}

func (o *closePeriodOp) Key() string      { return periodKey(o.subID, o.start) }
func (o *closePeriodOp) Kind() string     { return KindInvoice }
func (o *closePeriodOp) ShardKey() uint64 { return wallet.Route(o.customer) }
func (o *closePeriodOp) Module() string   { return moduleName }

func (o *closePeriodOp) Fingerprint() []byte {
	return ledger.Fingerprint(o.Kind(), struct {
		Sub        uuid.UUID
		Start, End time.Time
	}{o.subID, o.start, o.end})
}

func (o *closePeriodOp) Declare(d *ledger.Decl) {
	d.Account(o.money.receivable)
	d.Account(o.rounding)
	for _, s := range o.sys {
		d.Account(s.Receivable())
	}
	for _, w := range o.wallets {
		d.Account(wallet.RoundingAccount(w.ID))
	}
	for _, c := range o.conv {
		c.acc.Declare(d)
	}
}

func (o *closePeriodOp) needs(_ context.Context, b ledger.StageBatch) error {
	s, err := stageOf(b)
	if err != nil {
		return err
	}
	s.subs.wantIDs[o.subID] = true
	s.wantNumber(o.customer)
	for _, w := range o.wallets {
		if err := wallet.WantSettle(b, w.ID); err != nil {
			return err
		}
	}
	return nil
}

func (o *closePeriodOp) Apply(_ context.Context, b ledger.Batch) (any, error) {
	s, err := stageOf(b)
	if err != nil {
		return nil, err
	}
	sub := s.subs.subs[o.subID]
	if sub == nil {
		return nil, fmt.Errorf("subscription %s not loaded", o.subID)
	}
	ph := sub.phaseAt(o.start)
	if ph == nil {
		ph = &sub.phases[len(sub.phases)-1]
	}
	plan, ok := s.subs.plans[ph.plan]
	if !ok {
		return nil, fmt.Errorf("plan %q not loaded", ph.plan)
	}
	v := plan.at(o.start)
	owner := customerOwner(o.customer)
	subID := o.subID
	inv := Invoice{ID: InvoiceID(uuid.New()), SubscriptionID: &subID, CustomerID: o.customer, Currency: o.currency,
		MinorUnits: MinorUnits(o.currency), PeriodStart: o.start, PeriodEnd: o.cut, Lines: []InvoiceLine{},
		Status: InvoiceIssued, EntryID: b.EntryID(), CreatedAt: b.Now()}
	b.Describe(owner, "invoice "+o.start.Format(time.DateOnly)+" – "+o.cut.Format(time.DateOnly)+" ("+v.Code+")", nil)
	var (
		ts    []ledger.Transfer
		posts []ledger.Posting
	)
	share := o.share()
	// The base fee, prorated when the period was cut short.
	fee, err := o.prorate(v.BaseFee)
	if err != nil {
		return nil, err
	}
	if !fee.IsZero() {
		inv.Lines = append(inv.Lines, InvoiceLine{Kind: LineBaseFee, Description: "Base fee, plan " + v.Code,
			Quantity: share, UnitPrice: v.BaseFee.Decimal(), Amount: fee})
		ts = append(ts, ledger.Transfer{Debit: o.money.receivable, Credit: o.money.fees, Amount: fee})
	}
	// What each wallet owes, in money. A rest below the minor unit its own
	// cycles left in the wallet's rounding account joins the customer's
	// carry, converted once.
	var carriedIn ledger.Amount
	for _, w := range o.wallets {
		c := o.conv[w.Asset]
		if c == nil {
			to := o.sys[w.Asset].Receivable()
			acc, ok := b.Account(wallet.RoundingAccount(w.ID))
			if !ok {
				return nil, fmt.Errorf("rounding account of wallet %s not locked", w.ID)
			}
			if rest := acc.Posted(ledger.Debit); !rest.IsZero() {
				carriedIn = carriedIn.Add(rest)
				ts = append(ts, signed(ledger.Transfer{Debit: to, Credit: wallet.RoundingAccount(w.ID), Amount: rest}))
			}
			st, err := wallet.Settle(b, w.ID, to, inv.ID)
			if err != nil {
				return nil, err
			}
			inv.Lines = append(inv.Lines, linesOf(st)...)
			continue
		}
		old, ps, err := c.convertCreditsCarry(b, w.ID)
		if err != nil {
			return nil, err
		}
		st, err := wallet.Settle(b, w.ID, c.acc.CreditsConversion, inv.ID)
		if err != nil {
			return nil, err
		}
		lines, subtotal, err := moneyLines(st, c.conv)
		if err != nil {
			return nil, err
		}
		carriedIn = carriedIn.Add(old)
		inv.Lines = append(inv.Lines, lines...)
		posts = append(posts, ps...)
		posts = append(posts, convertPostings(c.acc, subtotal.Add(old))...)
	}
	var sum ledger.Amount
	for _, l := range inv.Lines {
		sum = sum.Add(l.Amount)
	}
	// The commitment: what the period must bill at least.
	commit, err := o.prorate(v.MinimumCommitment)
	if err != nil {
		return nil, err
	}
	if gap := commit.Sub(sum); gap.IsPositive() {
		inv.Lines = append(inv.Lines, InvoiceLine{Kind: LineCommitmentTrueUp,
			Description: "Minimum commitment " + commit.String() + " " + o.currency + ", plan " + v.Code,
			Quantity:    decimal.NewFromInt(1), UnitPrice: gap.Decimal(), Amount: gap})
		ts = append(ts, ledger.Transfer{Debit: o.money.receivable, Credit: o.money.commitment, Amount: gap})
		sum = sum.Add(gap)
	}
	inv.Subtotal = sum
	rounding, ok := b.Account(o.rounding)
	if !ok {
		return nil, fmt.Errorf("rounding account of customer %s not locked", o.customer)
	}
	carried := rounding.Posted(ledger.Debit)
	inv.CarriedIn = carried.Add(carriedIn)
	if inv.Total, inv.CarriedOut, err = round(inv.Subtotal, inv.CarriedIn, inv.MinorUnits); err != nil {
		return nil, err
	}
	ps := append(ledger.Postings(nonZero(ts)...), posts...)
	ps = append(ps, carry(o.money.receivable, o.rounding, carried, inv.CarriedOut)...)
	if len(ps) > 0 {
		if err := b.Post(ps...); err != nil {
			return nil, err
		}
	}
	if err := s.issue(b, &inv); err != nil {
		return nil, err
	}
	if err := b.Emit(TopicInvoiceCreated, owner, inv); err != nil {
		return nil, err
	}
	return inv, nil
}

// share is the part of the period its fees are due for, as the base fee
// line's quantity: 1, or the part before the cut (to 6 places; the amount
// itself is prorate's, exact).
func (o *closePeriodOp) share() decimal.Decimal {
	if !o.cut.Before(o.end) {
		return decimal.NewFromInt(1)
	}
	full := o.end.Sub(o.start)
	return decimal.NewFromInt(int64(o.cut.Sub(o.start))).DivRound(decimal.NewFromInt(int64(full)), 6)
}

// prorate is a fee's part for the time before the cut: fee × used / full,
// divided last so a third of 30 is 10, rounded at the ledger's scale.
func (o *closePeriodOp) prorate(fee ledger.Amount) (ledger.Amount, error) {
	if !o.cut.Before(o.end) {
		return fee, nil
	}
	used, full := decimal.NewFromInt(int64(o.cut.Sub(o.start))), decimal.NewFromInt(int64(o.end.Sub(o.start)))
	return ledger.NewAmount(fee.Decimal().Mul(used).DivRound(full, ledger.Scale))
}

// signed turns a transfer of a negative amount into the transfer the other
// way.
func signed(t ledger.Transfer) ledger.Transfer {
	if t.Amount.IsNegative() {
		return ledger.Transfer{Debit: t.Credit, Credit: t.Debit, Amount: t.Amount.Neg()}
	}
	return t
}

func nonZero(ts []ledger.Transfer) []ledger.Transfer {
	out := ts[:0]
	for _, t := range ts {
		if !t.Amount.IsZero() {
			out = append(out, t)
		}
	}
	return out
}

var _ op = (*closePeriodOp)(nil)
