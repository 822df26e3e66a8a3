package billing

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/fault"
)

//go:embed invoice.html.tmpl
var invoiceHTML string

var invoiceTemplate = template.Must(template.New("invoice").Parse(invoiceHTML))

// DefaultSeller is the seller an invoice names when none is configured.
const DefaultSeller = "CreditLedger"

// SetSeller names the seller printed on HTML invoices ("" keeps
// DefaultSeller). Call it before serving.
func (s *Service) SetSeller(name string) {
	if name != "" {
		s.seller = name
	}
}

// htmlInvoice is an invoice as the template prints it: text already
// formatted, so the template only places it.
type htmlInvoice struct {
	Title, Seller, Number, ID              string
	CustomerID, CustomerName               string
	Status, Currency                       string
	PeriodStart, PeriodEnd, Issued         string
	PaidAt, VoidedAt                       string
	PaymentReference, VoidReason           string
	Lines                                  []htmlLine
	Subtotal, CarriedIn, CarriedOut, Total string
}

type htmlLine struct {
	Type, Description, Quantity, UnitPrice, Amount string
}

// WriteHTML writes inv as a printable HTML page: seller, customer (id and
// name), number, period, status, each line with its type, and the totals,
// amounts in the currency's minor units.
func (s *Service) WriteHTML(ctx context.Context, w io.Writer, inv Invoice) error {
	var name string
	c, err := s.wallets.Customer(ctx, inv.CustomerID)
	switch {
	case err == nil:
		name = c.Name
	case !errors.Is(err, fault.NotFound):
		return err
	}
	return renderHTML(w, inv, s.seller, name)
}

// renderHTML is WriteHTML once the customer's name is known.
func renderHTML(w io.Writer, inv Invoice, seller, customerName string) error {
	if seller == "" {
		seller = DefaultSeller
	}
	m := inv.MinorUnits
	h := htmlInvoice{
		Seller: seller, ID: inv.ID.String(), CustomerID: inv.CustomerID, CustomerName: customerName,
		Status: inv.Status, Currency: inv.Currency,
		PeriodStart: day(inv.PeriodStart), PeriodEnd: day(inv.PeriodEnd), Issued: day(inv.CreatedAt),
		Subtotal: money(inv.Subtotal.Decimal(), m), CarriedIn: money(inv.CarriedIn.Decimal(), m),
		CarriedOut: money(inv.CarriedOut.Decimal(), m), Total: money(inv.Total.Decimal(), m),
	}
	h.Title = h.ID
	if inv.Number != nil {
		h.Number, h.Title = *inv.Number, *inv.Number
	}
	if inv.PaidAt != nil {
		h.PaidAt = day(*inv.PaidAt)
	}
	if inv.VoidedAt != nil {
		h.VoidedAt = day(*inv.VoidedAt)
	}
	h.PaymentReference, h.VoidReason = deref(inv.PaymentReference), deref(inv.VoidReason)
	for _, l := range inv.Lines {
		h.Lines = append(h.Lines, htmlLine{Type: l.Kind, Description: l.Description, Quantity: l.Quantity.String(),
			UnitPrice: money(l.UnitPrice, m), Amount: money(l.Amount.Decimal(), m)})
	}
	if err := invoiceTemplate.Execute(w, h); err != nil {
		return fmt.Errorf("render invoice %s: %w", inv.ID, err)
	}
	return nil
}

// money formats an amount with the currency's minor units (12.5 → 12.50
// in USD, 1234 in JPY), keeping the exact digits of an amount finer than
// them (a usage line's 0.0117): an invoice never prints a rounded line.
func money(d decimal.Decimal, minorUnits int32) string {
	if d.Exponent() >= -minorUnits || d.Equal(d.Truncate(minorUnits)) {
		return d.StringFixed(minorUnits)
	}
	return d.String()
}

func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
