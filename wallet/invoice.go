package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/cursor"
	"github.com/creditledger/creditledger/ledger"
)

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
	Kind        string          `json:"kind"`
	Description string          `json:"description"`
	Quantity    decimal.Decimal `json:"quantity"`
	UnitPrice   decimal.Decimal `json:"unit_price"`
	Amount      ledger.Amount   `json:"amount"`
	TopupID     *TopupID        `json:"topup_id,omitempty"`
}

// Invoice bills what a billing cycle's credits did not cover.
//
// Rounding rule: lines and Subtotal are exact. Total is Subtotal plus what
// the previous invoice carried, rounded toward zero to the currency's minor
// unit, so a customer is never billed for a fraction of a cent not yet
// used (nor credited one not yet owed); the rest (CarriedOut, always less
// than one minor unit) is carried to the next invoice. The carry lives in the wallet's rounding account in the ledger,
// so it is never lost: total billed + carried = everything owed.
type Invoice struct {
	ID          InvoiceID      `json:"id"`
	WalletID    WalletID       `json:"wallet_id"`
	CustomerID  string         `json:"customer_id"`
	Currency    string         `json:"currency"`
	MinorUnits  int32          `json:"minor_units"`
	PeriodStart time.Time      `json:"period_start"`
	PeriodEnd   time.Time      `json:"period_end"`
	Lines       []InvoiceLine  `json:"lines"`
	Subtotal    ledger.Amount  `json:"subtotal"`
	CarriedIn   ledger.Amount  `json:"carried_in"`
	Total       ledger.Amount  `json:"total"`
	CarriedOut  ledger.Amount  `json:"carried_out"`
	Status      string         `json:"status"`
	EntryID     ledger.EntryID `json:"entry_id"`
	CreatedAt   time.Time      `json:"created_at"`
}

// MinorUnits is the number of fractional digits of a currency's smallest
// unit (ISO 4217); 2 for anything else, credits included.
func MinorUnits(currency string) int32 {
	switch currency {
	case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0
	case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
		return 3
	}
	return 2
}

// openLines are w's usage lines not yet invoiced: what earlier batches
// stored plus what this batch added, in a stable order.
func (s *stage) openLines(w WalletID) []overageLine {
	sum := map[string]*overageLine{}
	var keys []string
	add := func(k string, l overageLine) {
		cur := sum[k]
		if cur == nil {
			c := l
			sum[k] = &c
			keys = append(keys, k)
			return
		}
		cur.quantity, cur.amount = cur.quantity.Add(l.quantity), cur.amount.Add(l.amount)
	}
	if !s.cycles.reset[w] {
		for _, k := range s.cycles.keys[w] {
			add(k, s.cycles.loaded[w][k])
		}
	}
	var delta []string
	for k := range s.cycles.deltas[w] {
		delta = append(delta, k)
	}
	sort.Strings(delta)
	for _, k := range delta {
		add(k, *s.cycles.deltas[w][k])
	}
	sort.SliceStable(keys, func(i, j int) bool { return sum[keys[i]].description < sum[keys[j]].description })
	out := make([]overageLine, len(keys))
	for i, k := range keys {
		out[i] = *sum[k]
	}
	return out
}

// issue records inv: the open lines and billable top-ups are now invoiced.
func (s *stage) issue(b ledger.Batch, w *walletState, inv *Invoice) {
	s.cycles.open()
	savedDeltas, savedReset, savedBillable := s.cycles.deltas[w.ID], s.cycles.reset[w.ID], s.topups.billable[w.ID]
	for _, t := range savedBillable {
		prev := t.InvoiceID
		id := inv.ID
		t.InvoiceID = &id
		_, was := s.topups.dirty[t]
		s.topups.dirty[t] = struct{}{}
		b.OnUndo(func() {
			t.InvoiceID = prev
			if !was {
				delete(s.topups.dirty, t)
			}
		})
	}
	delete(s.cycles.deltas, w.ID)
	s.cycles.reset[w.ID] = true
	s.topups.billable[w.ID] = nil
	s.cycles.invoices = append(s.cycles.invoices, inv)
	b.OnUndo(func() {
		s.cycles.deltas[w.ID], s.cycles.reset[w.ID], s.topups.billable[w.ID] = savedDeltas, savedReset, savedBillable
		s.cycles.invoices = s.cycles.invoices[:len(s.cycles.invoices)-1]
	})
}

const invoiceSelect = `SELECT id, wallet_id, customer_id, currency, period_start, period_end, lines, subtotal, carried_in, total,
	carried_out, status, entry_id, created_at FROM invoices`

func scanInvoice(row pgx.Row) (Invoice, error) {
	var (
		inv   Invoice
		lines []byte
	)
	if err := row.Scan(&inv.ID, &inv.WalletID, &inv.CustomerID, &inv.Currency, &inv.PeriodStart, &inv.PeriodEnd, &lines,
		&inv.Subtotal, &inv.CarriedIn, &inv.Total, &inv.CarriedOut, &inv.Status, &inv.EntryID, &inv.CreatedAt); err != nil {
		return inv, err
	}
	inv.MinorUnits = MinorUnits(inv.Currency)
	inv.PeriodStart, inv.PeriodEnd, inv.CreatedAt = inv.PeriodStart.UTC(), inv.PeriodEnd.UTC(), inv.CreatedAt.UTC()
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

// Invoices lists a customer's invoices like Topups lists top-ups.
func (s *Service) Invoices(ctx context.Context, customerID string, after *cursor.Cursor, limit int) ([]Invoice, *cursor.Cursor, error) {
	if _, err := s.Customer(ctx, customerID); err != nil {
		return nil, nil, err
	}
	q, args := pageSQL(invoiceSelect+` WHERE customer_id = $1`, []any{customerID}, after, limit)
	rows, err := s.db.Pool.Query(ctx, q, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("list invoices: %w", err)
	}
	invs, err := collect(rows, scanInvoice)
	if err != nil {
		return nil, nil, fmt.Errorf("list invoices: %w", err)
	}
	invs, next := cursor.Page(invs, limit, func(i Invoice) cursor.Cursor { return cursor.Cursor{At: i.CreatedAt, ID: uuid.UUID(i.ID)} })
	return invs, next, nil
}
