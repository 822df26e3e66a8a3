package wallet

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/ledger"
)

// SystemAccounts are an asset's funding and revenue accounts, resolved by
// Service.System before an op that charges usage is submitted.
type SystemAccounts = systemAccounts

// System returns the asset's system accounts, creating them on first use.
func (s *Service) System(ctx context.Context, asset string) (SystemAccounts, error) {
	return s.system(ctx, asset)
}

// Want asks the wallet stage of batch b to load wallet id, for an op of
// another module (metering) that learns its wallets while loading.
func Want(b *ledger.Batch, id WalletID) {
	s := stageOf(b)
	s.wanted = append(s.wanted, id)
}

// Charge is what ChargeUsage did.
type Charge struct {
	Amount   ledger.Amount `json:"amount"`   // signed: negative is a credit back
	Covered  ledger.Amount `json:"covered"`  // by credits
	Overage  ledger.Amount `json:"overage"`  // put on the receivable
	Credited ledger.Amount `json:"credited"` // given back (negative deltas)
}

// ChargeUsage charges amount of metered usage to a loaded wallet inside the
// batch. Usage has already happened, so it is never refused: what the
// credits do not cover goes on the overage receivable whatever the policy
// (which governs explicit debits and holds). A negative amount — a volume
// price crossing into a cheaper tier — is credited back: first against
// outstanding overage, the rest as a new credit grant funded by revenue.
//
// What the credits did not cover is added to line, the invoice line the
// usage is billed on when the cycle closes.
func ChargeUsage(b *ledger.Batch, id WalletID, sys SystemAccounts, amount ledger.Amount, line UsageLine) (Charge, error) {
	s, w, err := walletFor(b, id)
	if err != nil {
		return Charge{}, err
	}
	c := Charge{Amount: amount}
	switch amount.Sign() {
	case 0:
		return c, nil
	case 1:
		shares, covered, overage, _ := planWith(b, w, amount, true)
		var ps []ledger.Posting
		for _, sh := range shares {
			ps = append(ps, ledger.Postings(ledger.Transfer{Debit: sh.Debit, Credit: sys.revenue, Amount: sh.Amount})...)
		}
		if err := b.Post(ps...); err != nil {
			return Charge{}, err
		}
		c.Covered, c.Overage = covered, overage
		if overage.IsPositive() {
			s.addOverage(b, w.ID, line, amount, overage)
		}
		return c, s.react(b, w)
	}
	back := amount.Neg()
	c.Credited = back
	acc, ok := b.Account(w.overage)
	if !ok {
		return Charge{}, fmt.Errorf("overage account of %s not locked", id)
	}
	if owed := acc.Posted(ledger.Debit).Min(back); owed.IsPositive() {
		if err := b.Post(ledger.Postings(ledger.Transfer{Debit: sys.revenue, Credit: w.overage, Amount: owed})...); err != nil {
			return Charge{}, err
		}
		back = back.Sub(owed)
		c.Overage = owed.Neg()
		s.addOverage(b, w.ID, line, amount, c.Overage)
	}
	if !back.IsPositive() {
		return c, s.react(b, w)
	}
	// A credit back is not a purchase: it does not re-arm the alerts.
	if _, err := s.creditGrant(b, w, sys.revenue, true, ledger.NewAccountID(), Grant{
		ID: GrantID(uuid.New()), Kind: Paid, Amount: back, Priority: 0, EffectiveAt: b.Now(),
		Description: "usage credit: " + line.description(),
	}); err != nil {
		return Charge{}, err
	}
	return c, s.react(b, w)
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
