package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/cursor"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

// InvoiceID names an invoice.
type InvoiceID = wallet.InvoiceID

// ParseInvoiceID parses an invoice id from a URL.
func ParseInvoiceID(s string) (InvoiceID, error) { return wallet.ParseInvoiceID(s) }

// Invoice line kinds.
const (
	LineUsage      = "usage"      // metered usage the credits did not cover, per meter and dimensions
	LineDebits     = "debits"     // debits and hold captures the credits did not cover
	LineTopup      = "topup"      // an immediate top-up, credited before it was paid
	LineAdjustment = "adjustment" // what voids took back from immediate top-ups
)

const (
	KindInvoice         = "invoice"
	TopicInvoiceCreated = "invoice.created"
	InvoiceIssued       = "issued"
)

// InvoiceLine is one line of an invoice. Amount is exact (the ledger's
// scale); Quantity × UnitPrice equals it for per-unit prices and topups, and
// UnitPrice is the average price otherwise.
type InvoiceLine struct {
	// Kind is the line's type, also sent as "type" (linetype.go); "kind"
	// stays for older clients. Deprecated: read type.
	Kind        string          `json:"kind"`
	Description string          `json:"description"`
	Quantity    decimal.Decimal `json:"quantity"`
	UnitPrice   decimal.Decimal `json:"unit_price"`
	Amount      ledger.Amount   `json:"amount"`
	TopupID     *wallet.TopupID `json:"topup_id,omitempty"`
	// Lines of an invoice in money (money.go): the credits the line charged
	// and the money per credit; Amount = Credits × CreditPrice.
	Credits     *ledger.Amount   `json:"credits,omitempty"`
	CreditPrice *decimal.Decimal `json:"credit_price,omitempty"`
}

// Invoice bills what a billing cycle's credits did not cover.
//
// Rounding rule: lines and Subtotal are exact. Total is Subtotal plus what
// the previous invoice carried, rounded toward zero to the currency's minor
// unit, so a customer is never billed for a fraction of a cent not yet
// used (nor credited one not yet owed); the rest (CarriedOut, always less
// than one minor unit) is carried to the next invoice. The carry lives in
// a rounding account in the ledger, so it is never lost: total billed +
// carried = everything owed.
type Invoice struct {
	ID             InvoiceID        `json:"id"`
	WalletID       *wallet.WalletID `json:"wallet_id"`       // a wallet's cycle; nil for a subscription's period
	SubscriptionID *uuid.UUID       `json:"subscription_id"` // a subscription's period
	CustomerID     string           `json:"customer_id"`
	Currency       string           `json:"currency"`
	MinorUnits     int32            `json:"minor_units"`
	PeriodStart    time.Time        `json:"period_start"`
	PeriodEnd      time.Time        `json:"period_end"`
	Lines          []InvoiceLine    `json:"lines"`
	Subtotal       ledger.Amount    `json:"subtotal"`
	CarriedIn      ledger.Amount    `json:"carried_in"`
	Total          ledger.Amount    `json:"total"`
	CarriedOut     ledger.Amount    `json:"carried_out"`
	Status         string           `json:"status"`
	EntryID        ledger.EntryID   `json:"entry_id"`
	CreatedAt      time.Time        `json:"created_at"`
	InvoiceLife
}

// MinorUnits is the number of fractional digits of a currency's smallest
// unit (ISO 4217); 2 for anything else, credits included. The table is the
// wallet package's, shared with asset descriptions.
func MinorUnits(currency string) int32 { return wallet.MinorUnits(currency) }

// linesOf are the invoice lines of what a wallet settled, in its asset: a
// usage line per meter and dimensions (at its per-unit price, or the
// average), the debits and captures the usage lines do not explain, a line
// per immediate top-up, and what voids took back from top-ups invoiced
// before.
func linesOf(st wallet.Settlement) []InvoiceLine {
	one := decimal.NewFromInt(1)
	var out []InvoiceLine
	for _, u := range st.Usage {
		price := u.Amount.Decimal()
		switch {
		case u.UnitPrice != nil:
			price = *u.UnitPrice
		case !u.Quantity.IsZero():
			price = u.Amount.Decimal().DivRound(u.Quantity, ledger.Scale)
		}
		out = append(out, InvoiceLine{Kind: LineUsage, Description: u.Description, Quantity: u.Quantity, UnitPrice: price, Amount: u.Amount})
	}
	if !st.Debits.IsZero() {
		out = append(out, InvoiceLine{Kind: LineDebits, Description: "Debits and captures not covered by credits",
			Quantity: one, UnitPrice: st.Debits.Decimal(), Amount: st.Debits})
	}
	for _, t := range st.Topups {
		id := t.ID
		out = append(out, InvoiceLine{Kind: LineTopup, Description: "Auto top-up " + t.CreatedAt.Format(time.DateOnly),
			Quantity: one, UnitPrice: t.Amount.Decimal(), Amount: t.Amount, TopupID: &id})
	}
	if !st.Adjustment.IsZero() {
		out = append(out, InvoiceLine{Kind: LineAdjustment, Description: "Voided top-up credits",
			Quantity: one, UnitPrice: st.Adjustment.Decimal(), Amount: st.Adjustment})
	}
	return out
}

// round is the rounding rule: subtotal plus what the last invoice carried,
// rounded toward zero to minor units; the rest is carried out.
func round(subtotal, carriedIn ledger.Amount, minorUnits int32) (total, carriedOut ledger.Amount, err error) {
	exact := subtotal.Add(carriedIn)
	total, err = ledger.NewAmount(exact.Decimal().Truncate(minorUnits))
	if err != nil {
		return ledger.Zero, ledger.Zero, err
	}
	return total, exact.Sub(total), nil
}

// carry moves the rounding rest through account carry: what the last
// invoice carried comes into this one's receivable, and what this one
// leaves goes back.
func carry(receivable, carry ledger.AccountID, in, out ledger.Amount) []ledger.Posting {
	var ts []ledger.Transfer
	for _, t := range []ledger.Transfer{
		{Debit: receivable, Credit: carry, Amount: in},
		{Debit: carry, Credit: receivable, Amount: out},
	} {
		switch t.Amount.Sign() {
		case 1:
			ts = append(ts, t)
		case -1: // a credit: the transfer the other way
			ts = append(ts, ledger.Transfer{Debit: t.Credit, Credit: t.Debit, Amount: t.Amount.Neg()})
		}
	}
	return ledger.Postings(ts...)
}

const invoiceSelect = `SELECT id, wallet_id, subscription_id, customer_id, currency, period_start, period_end, lines, subtotal,
	carried_in, total, carried_out, status, entry_id, created_at, ` + lifeColumns + ` FROM invoices`

func scanInvoice(row pgx.Row) (Invoice, error) {
	var (
		inv   Invoice
		lines []byte
	)
	if err := row.Scan(append([]any{&inv.ID, &inv.WalletID, &inv.SubscriptionID, &inv.CustomerID, &inv.Currency, &inv.PeriodStart,
		&inv.PeriodEnd, &lines, &inv.Subtotal, &inv.CarriedIn, &inv.Total, &inv.CarriedOut, &inv.Status, &inv.EntryID, &inv.CreatedAt},
		inv.lifeTargets()...)...); err != nil {
		return inv, err
	}
	inv.MinorUnits = MinorUnits(inv.Currency)
	inv.PeriodStart, inv.PeriodEnd, inv.CreatedAt = inv.PeriodStart.UTC(), inv.PeriodEnd.UTC(), inv.CreatedAt.UTC()
	inv.utc()
	if err := json.Unmarshal(lines, &inv.Lines); err != nil {
		return inv, fmt.Errorf("invoice %s lines: %w", inv.ID, err)
	}
	return inv, nil
}

// Invoice reads an invoice.
func (s *Service) Invoice(ctx context.Context, id InvoiceID) (Invoice, error) {
	inv, err := scanInvoice(s.db.Pool.QueryRow(ctx, invoiceSelect+` WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Invoice{}, fault.NotFoundf("no invoice %s", id)
	}
	if err != nil {
		return Invoice{}, fmt.Errorf("read invoice: %w", err)
	}
	return inv, nil
}

// Invoices lists a customer's invoices, newest first.
func (s *Service) Invoices(ctx context.Context, customerID string, after *cursor.Cursor, limit int) ([]Invoice, *cursor.Cursor, error) {
	return s.ListInvoices(ctx, InvoiceFilter{CustomerID: customerID}, after, limit)
}
