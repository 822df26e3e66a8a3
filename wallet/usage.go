package wallet

import (
	"fmt"
	"sort"
	"strings"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/ledger"
)

// Want asks the wallet stage of batch b to load wallet id, for the stage of
// a module that feeds this one (metering learns which wallets its events
// charge while it loads, before the wallet stage loads).
func Want(b ledger.StageBatch, id WalletID) error {
	s, err := stageOf(b)
	if err != nil {
		return err
	}
	s.wanted = append(s.wanted, id)
	return nil
}

// Charger charges metered usage to wallets inside a batch: the wallet
// module's side of a usage event (see ChargeUsage). Metering holds one, so
// its own rules can be tested against another.
type Charger struct{}

// ChargeUsage is ChargeUsage.
func (Charger) ChargeUsage(b ledger.Batch, id WalletID, sys SystemAccounts, amount ledger.Amount, line UsageLine) (Charge, error) {
	return ChargeUsage(b, id, sys, amount, line)
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
func ChargeUsage(b ledger.Batch, id WalletID, sys SystemAccounts, amount ledger.Amount, line UsageLine) (Charge, error) {
	s, w, err := walletFor(b, id)
	if err != nil {
		return Charge{}, err
	}
	c := Charge{Amount: amount}
	switch amount.Sign() {
	case 0:
		return c, nil
	case 1:
		sp, err := burnDown(b, w, amount, true) // forced: never refused for money
		if err != nil {
			return Charge{}, err
		}
		if err := b.Post(sp.transfers(sys.revenue)...); err != nil {
			return Charge{}, err
		}
		c.Covered, c.Overage = sp.covered, sp.overage
		if sp.overage.IsPositive() {
			s.addOverage(b, w.ID, line, amount, sp.overage)
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

// UsageLine says which invoice line metered usage goes to if the credits do
// not cover it. Its key and description are only made for usage that
// reaches the invoice, not for every event.
type UsageLine struct {
	Meter     uuid.UUID
	MeterCode string
	DimsKey   string            // canonical dimensions, e.g. {"model":"gpt-4o"}
	Dims      map[string]string // the same, to describe the line
	Quantity  decimal.Decimal   // the event's quantity delta
	UnitPrice *decimal.Decimal  // set for per-unit prices
}

func (l UsageLine) key() string { return l.Meter.String() + "|" + l.DimsKey }

// description is the line's text: "tokens (model=gpt-4o, token_type=input)".
func (l UsageLine) description() string {
	if len(l.Dims) == 0 {
		return l.MeterCode
	}
	parts := make([]string, 0, len(l.Dims))
	for k, v := range l.Dims {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return l.MeterCode + " (" + strings.Join(parts, ", ") + ")"
}
