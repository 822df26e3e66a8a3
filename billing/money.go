package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

// Money invoices: credits that are worth money are invoiced in money.
//
// Conversion goes through trading accounts, so every entry stays balanced
// per asset: what the wallet owes in credits is settled into the credits
// asset's `conversion` account (not its receivable), and the same value in
// money is posted Dr `receivable:invoices` / Cr `conversion` of the
// currency. The two conversion accounts together say how many credits were
// invoiced for how much money. The rounding rest is money too, carried in
// one account per customer and currency (customerRounding), so two priced
// wallets of a customer never lose a fraction of a cent between them.
//
// A period converts at the rate in force at its start (RateAt): a price
// change mid-period applies from the next period, never re-rates one
// already running. These pieces are what any close that bills credits in
// money uses — a wallet's cycle here, a subscription's period too.

// Conversion is how one credits asset becomes money for one period: one
// credit is worth CreditPrice of Currency, whose smallest unit has
// MinorUnits fractional digits.
type Conversion struct {
	Asset       string
	Currency    string
	CreditPrice decimal.Decimal
	MinorUnits  int32
}

// ConversionAt is the conversion of asset for a period that starts at
// start: nil when the asset is not credits priced at that instant (an
// unpriced asset, one nobody described, or one priced only later), which
// is invoiced in the asset itself as before.
func (s *Service) ConversionAt(ctx context.Context, asset string, start time.Time) (*Conversion, error) {
	a, err := s.wallets.Asset(ctx, asset)
	if errors.Is(err, fault.NotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if a.Kind != wallet.AssetCredits || a.Currency == nil {
		return nil, nil
	}
	price, ok, err := s.wallets.RateAt(ctx, asset, start)
	if err != nil || !ok {
		return nil, err
	}
	mu, err := s.wallets.MinorUnitsOf(ctx, *a.Currency)
	if err != nil {
		return nil, err
	}
	return &Conversion{Asset: asset, Currency: *a.Currency, CreditPrice: price.Decimal(), MinorUnits: mu}, nil
}

// MoneyAccounts are the accounts a conversion posts to for one customer.
type MoneyAccounts struct {
	CreditsConversion ledger.AccountID // the credits asset's conversion: where Settle moves what is owed
	Receivable        ledger.AccountID // the currency's receivable:invoices
	Conversion        ledger.AccountID // the currency's conversion
	Rounding          ledger.AccountID // the customer's rounding carry in the currency (customerRounding)
}

// Declare declares the accounts for an op that converts.
func (m MoneyAccounts) Declare(d *ledger.Decl) {
	d.Account(m.CreditsConversion)
	d.Account(m.Receivable)
	d.Account(m.Conversion)
	d.Account(m.Rounding)
}

// roundingNamespace derives customers' money owner ids; fixed forever, as
// the ids derived from it are stored.
var roundingNamespace = uuid.MustParse("6f1d6c3e-8a43-4c55-9d0e-2b7c1f6a9e01")

// customerOwner is the ledger owner of a customer's own accounts (its
// money rounding carry), derived from the customer's id so every op can
// name it without a lookup.
func customerOwner(customerID string) ledger.OwnerID {
	return ledger.OwnerID(uuid.NewSHA1(roundingNamespace, []byte(customerID)))
}

// customerRounding is the account carrying the part of a customer's money
// invoices below currency's minor unit to the next one (debit-normal, may
// go either way, like a wallet's rounding account).
func customerRounding(customerID, currency string) ledger.AccountID {
	return ledger.AccountID(uuid.NewSHA1(uuid.UUID(customerOwner(customerID)), []byte("rounding:"+currency)))
}

// EnsureMoneyAccounts opens, before an op that converts is submitted, the
// accounts it posts to: the conversion accounts of both assets and the
// currency's receivable (system accounts, cached by the ledger), and the
// customer's rounding account.
func (s *Service) EnsureMoneyAccounts(ctx context.Context, customerID string, conv Conversion) (MoneyAccounts, error) {
	var m MoneyAccounts
	for _, a := range []struct {
		dst    *ledger.AccountID
		asset  string
		normal ledger.Normal
	}{
		{&m.CreditsConversion, conv.Asset, ledger.Debit},
		{&m.Conversion, conv.Currency, ledger.Credit},
	} {
		acc, err := s.l.EnsureAccount(ctx, ledger.AccountSpec{Code: "conversion", Asset: a.asset, Normal: a.normal, Hot: true})
		if err != nil {
			return m, fmt.Errorf("conversion account: %w", err)
		}
		*a.dst = acc.ID
	}
	sys, err := s.wallets.System(ctx, conv.Currency)
	if err != nil {
		return m, err
	}
	m.Receivable = sys.Receivable()
	m.Rounding, err = s.openCustomerRounding(ctx, customerID, conv.Currency)
	return m, err
}

// openCustomerRounding opens the customer's rounding account in currency
// unless it is there.
func (s *Service) openCustomerRounding(ctx context.Context, customerID, currency string) (ledger.AccountID, error) {
	id := customerRounding(customerID, currency)
	err := s.db.RunTx(ctx, pg.TxOptions{}, func(ctx context.Context, tx pgx.Tx) error {
		_, err := ledger.InsertAccount(ctx, tx, ledger.AccountSpec{ID: id, Code: "rounding:customer:" + customerID,
			Asset: currency, Owner: customerOwner(customerID), Normal: ledger.Debit})
		return err
	})
	if err != nil {
		return id, fmt.Errorf("open customer rounding account: %w", err)
	}
	return id, nil
}

// moneyLines are the lines of what a wallet settled, in money: each keeps
// its quantity and its description, Credits is what it charged in credits,
// CreditPrice the money per credit, UnitPrice the money per unit of
// quantity (exact for per-unit lines: the credits per unit × the credit
// price) and Amount the money, Credits × CreditPrice (wallet.Money). The
// subtotal is the sum of the amounts: what the conversion posts.
func moneyLines(st wallet.Settlement, conv Conversion) ([]InvoiceLine, ledger.Amount, error) {
	lines := linesOf(st)
	out := make([]InvoiceLine, 0, len(lines))
	var subtotal ledger.Amount
	for _, l := range lines {
		m, err := moneyLine(l, conv.CreditPrice)
		if err != nil {
			return nil, ledger.Zero, err
		}
		subtotal = subtotal.Add(m.Amount)
		out = append(out, m)
	}
	return out, subtotal, nil
}

// moneyLine is one line in credits (as linesOf makes it) in money.
func moneyLine(l InvoiceLine, price decimal.Decimal) (InvoiceLine, error) {
	amount, err := wallet.Money(l.Amount.Decimal(), price)
	if err != nil {
		return InvoiceLine{}, fmt.Errorf("line %q in money: %w", l.Description, err)
	}
	credits, p := l.Amount, price
	l.Credits, l.CreditPrice = &credits, &p
	l.UnitPrice, l.Amount = l.UnitPrice.Mul(price), amount
	return l, nil
}

// convertPostings books money's side of a conversion: Dr the currency's
// receivable, Cr its conversion account, for subtotal (the other way when a
// credit, e.g. voided top-ups, makes it negative). The credits' side is the
// Settle into the credits asset's conversion account.
func convertPostings(m MoneyAccounts, subtotal ledger.Amount) []ledger.Posting {
	switch subtotal.Sign() {
	case 1:
		return ledger.Postings(ledger.Transfer{Debit: m.Receivable, Credit: m.Conversion, Amount: subtotal})
	case -1:
		return ledger.Postings(ledger.Transfer{Debit: m.Conversion, Credit: m.Receivable, Amount: subtotal.Neg()})
	}
	return nil
}

// moneyClose is what a cycle close of a priced wallet converts with.
type moneyClose struct {
	conv Conversion
	acc  MoneyAccounts
}

// invoice settles the wallet into the credits' conversion account and
// fills inv in money: lines, exact subtotal, and the total rounded with the
// customer's money carry.
func (m *moneyClose) invoice(b ledger.Batch, id wallet.WalletID, inv *Invoice) error {
	inv.Currency, inv.MinorUnits = m.conv.Currency, m.conv.MinorUnits
	rounding, ok := b.Account(m.acc.Rounding)
	if !ok {
		return fmt.Errorf("rounding account of customer %s not locked", inv.CustomerID)
	}
	carriedIn := rounding.Posted(ledger.Debit)
	// A rest in credits, left by invoices from before the asset was priced,
	// is converted once into this invoice's carry, so it is not lost.
	old, ps, err := m.convertCreditsCarry(b, id)
	if err != nil {
		return err
	}
	inv.CarriedIn = carriedIn.Add(old)
	st, err := wallet.Settle(b, id, m.acc.CreditsConversion, inv.ID)
	if err != nil {
		return err
	}
	if inv.Lines, inv.Subtotal, err = moneyLines(st, m.conv); err != nil {
		return err
	}
	if inv.Total, inv.CarriedOut, err = round(inv.Subtotal, inv.CarriedIn, inv.MinorUnits); err != nil {
		return err
	}
	ps = append(ps, convertPostings(m.acc, inv.Subtotal.Add(old))...)
	ps = append(ps, carry(m.acc.Receivable, m.acc.Rounding, carriedIn, inv.CarriedOut)...)
	if len(ps) == 0 {
		return nil
	}
	return b.Post(ps...)
}

// convertCreditsCarry empties wallet id's rounding account (in credits)
// into the credits' conversion account, and returns what it was worth in
// money, which the caller converts with the subtotal.
func (m *moneyClose) convertCreditsCarry(b ledger.Batch, id wallet.WalletID) (ledger.Amount, []ledger.Posting, error) {
	acc, ok := b.Account(wallet.RoundingAccount(id))
	if !ok {
		return ledger.Zero, nil, fmt.Errorf("rounding account of wallet %s not locked", id)
	}
	rest := acc.Posted(ledger.Debit)
	if rest.IsZero() {
		return ledger.Zero, nil, nil
	}
	money, err := wallet.Money(rest.Decimal(), m.conv.CreditPrice)
	if err != nil {
		return ledger.Zero, nil, err
	}
	// carry's first leg, Dr to / Cr from for rest, either sign.
	return money, carry(m.acc.CreditsConversion, wallet.RoundingAccount(id), rest, ledger.Zero), nil
}

// moneyClose is how a cycle of wallet w that starts at start converts: nil
// when its asset is not priced then.
func (s *Service) moneyClose(ctx context.Context, w wallet.Wallet, start time.Time) (*moneyClose, error) {
	conv, err := s.ConversionAt(ctx, w.Asset, start)
	if err != nil || conv == nil {
		return nil, err
	}
	acc, err := s.EnsureMoneyAccounts(ctx, w.CustomerID, *conv)
	if err != nil {
		return nil, err
	}
	return &moneyClose{conv: *conv, acc: acc}, nil
}
