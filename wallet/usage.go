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

// WalletInBatch is what another module may know of a loaded wallet.
type WalletInBatch struct {
	ID         WalletID
	CustomerID string
	Asset      string
	CreatedAt  time.Time
}

// Loaded returns a wallet the stage loaded (see Want).
func Loaded(b *ledger.Batch, id WalletID) (WalletInBatch, bool) {
	w := stageOf(b).wallets[id]
	if w == nil {
		return WalletInBatch{}, false
	}
	return WalletInBatch{ID: w.ID, CustomerID: w.CustomerID, Asset: w.Asset, CreatedAt: w.CreatedAt}, true
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
func ChargeUsage(b *ledger.Batch, id WalletID, sys SystemAccounts, amount ledger.Amount, description string) (Charge, error) {
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
		return c, nil
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
	}
	if !back.IsPositive() {
		return c, nil
	}
	gid, account := GrantID(uuid.New()), ledger.NewAccountID()
	if _, err := b.CreateAccount(ledger.AccountSpec{ID: account, Code: "grant:" + gid.String(), Asset: w.Asset,
		Owner: w.ID, Normal: ledger.Credit, NoOverdraft: true}); err != nil {
		return Charge{}, err
	}
	if err := b.Post(ledger.Postings(ledger.Transfer{Debit: sys.revenue, Credit: account, Amount: back})...); err != nil {
		return Charge{}, err
	}
	revenue := sys.revenue
	g := &grantState{isNew: true, account: account, fundingAccount: &revenue, Grant: Grant{
		ID: gid, WalletID: w.ID, Kind: Paid, Amount: back, Remaining: back, Priority: 0,
		EffectiveAt: b.Now(), Description: description, Status: GrantActive, CreatedAt: b.Now(),
	}}
	s.grants[g.ID] = g
	w.grants = append(w.grants, g)
	s.newRows = append(s.newRows, g)
	t := s.totals[w.ID]
	t.granted = t.granted.Add(back)
	b.OnUndo(func() {
		delete(s.grants, g.ID)
		w.grants = w.grants[:len(w.grants)-1]
		s.newRows = s.newRows[:len(s.newRows)-1]
		t.granted = t.granted.Sub(back)
	})
	return c, nil
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
