package billing

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/cursor"
	"github.com/creditledger/creditledger/internal/pg"
)

// InvoiceFilter narrows a list of invoices; zero fields filter nothing.
type InvoiceFilter struct {
	CustomerID string     // one customer's (404 if there is no such customer)
	Status     string     // issued, paid or void
	From, To   *time.Time // period_start in [From, To)
}

// ListInvoices lists invoices, every customer's unless the filter names
// one, newest first.
func (s *Service) ListInvoices(ctx context.Context, f InvoiceFilter, after *cursor.Cursor, limit int) ([]Invoice, *cursor.Cursor, error) {
	switch f.Status {
	case "", InvoiceIssued, InvoicePaid, InvoiceVoid:
	default:
		return nil, nil, fault.Invalidf("status", "must be issued, paid or void")
	}
	if f.From != nil && f.To != nil && !f.From.Before(*f.To) {
		return nil, nil, fault.Invalidf("to", "must be after from")
	}
	if f.CustomerID != "" {
		if _, err := s.wallets.Customer(ctx, f.CustomerID); err != nil {
			return nil, nil, err
		}
	}
	q, args := invoiceSelect+` WHERE true`, []any{}
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if f.CustomerID != "" {
		q += ` AND customer_id = ` + arg(f.CustomerID)
	}
	if f.Status != "" {
		q += ` AND status = ` + arg(f.Status)
	}
	if f.From != nil {
		q += ` AND period_start >= ` + arg(*f.From)
	}
	if f.To != nil {
		q += ` AND period_start < ` + arg(*f.To)
	}
	q, args = cursor.PageSQL(q, args, after, limit)
	rows, err := s.db.Pool.Query(ctx, q, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("list invoices: %w", err)
	}
	invs, err := pg.Collect(rows, scanInvoice)
	if err != nil {
		return nil, nil, fmt.Errorf("list invoices: %w", err)
	}
	invs, next := cursor.Page(invs, limit, func(i Invoice) cursor.Cursor { return cursor.Cursor{At: i.CreatedAt, ID: uuid.UUID(i.ID)} })
	return invs, next, nil
}
