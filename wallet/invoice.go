package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/internal/cursor"
	"github.com/creditledger/creditledger/ledger"
)

// InvoiceID names an invoice.
type InvoiceID uuid.UUID

func (id InvoiceID) String() string                { return uuid.UUID(id).String() }
func (id InvoiceID) MarshalText() ([]byte, error)  { return []byte(id.String()), nil }
func (id *InvoiceID) UnmarshalText(b []byte) error { return (*uuid.UUID)(id).UnmarshalText(b) }

// ParseInvoiceID parses an invoice id from a URL.
func ParseInvoiceID(s string) (InvoiceID, error) {
	u, err := uuid.Parse(s)
	return InvoiceID(u), err
}

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

// overageLine is one line's running sum since the last invoice.
type overageLine struct {
	description string
	quantity    decimal.Decimal
	amount      ledger.Amount
	unitPrice   *decimal.Decimal
}

// addOverage adds the uncovered part of a usage charge to its line.
func (s *stage) addOverage(b *ledger.Batch, w WalletID, l UsageLine, charged, uncovered ledger.Amount) {
	qty := l.Quantity
	// A credit back (both negative) counts its quantity like any usage: a
	// volume tier that lowers the price still used the units.
	switch {
	case uncovered.Equal(charged):
	case l.UnitPrice != nil && !l.UnitPrice.IsZero():
		qty = uncovered.Decimal().DivRound(*l.UnitPrice, ledger.Scale)
	default:
		qty = l.Quantity.Mul(uncovered.Decimal()).DivRound(charged.Decimal(), ledger.Scale)
	}
	m := s.lineDeltas[w]
	if m == nil {
		m = map[string]*overageLine{}
		s.lineDeltas[w] = m
	}
	key := l.key()
	cur, had := m[key]
	var saved overageLine
	if had {
		saved = *cur
	} else {
		cur = &overageLine{description: l.description(), unitPrice: l.UnitPrice}
		m[key] = cur
	}
	cur.quantity, cur.amount = cur.quantity.Add(qty), cur.amount.Add(uncovered)
	b.OnUndo(func() {
		if had {
			*cur = saved
		} else {
			delete(m, key)
		}
	})
}

// closeCycleOp closes one billing cycle of a wallet and issues its invoice.
// Its key names the cycle, so the cycle closes once however many times it is
// asked (the API, the scheduler, two processes).
type closeCycleOp struct {
	base
	start, end time.Time
}

func (o *closeCycleOp) Kind() string { return KindInvoice }
func (o *closeCycleOp) Fingerprint() []byte {
	return ledger.Fingerprint(o.Kind(), struct {
		W          WalletID
		Start, End time.Time
	}{o.walletID, o.start, o.end})
}
func (o *closeCycleOp) Declare(d *ledger.Decl) {
	d.Account(o.sys.receivable)
	d.Account(billableAccount(o.walletID))
	d.Account(roundingAccount(o.walletID))
}

func cycleKey(w WalletID, start time.Time) string {
	return "close-cycle:" + w.String() + ":" + start.UTC().Format(time.RFC3339Nano)
}

func (o *closeCycleOp) Apply(_ context.Context, b *ledger.Batch) (any, error) {
	s, w, err := walletFor(b, o.walletID)
	if err != nil {
		return nil, err
	}
	balance := func(id ledger.AccountID) (ledger.Amount, error) {
		acc, ok := b.Account(id)
		if !ok {
			return ledger.Zero, fmt.Errorf("account %s of wallet %s not locked", id, w.ID)
		}
		return acc.Posted(ledger.Debit), nil
	}
	overage, err := balance(w.overage)
	if err != nil {
		return nil, err
	}
	billable, err := balance(billableAccount(w.ID))
	if err != nil {
		return nil, err
	}
	carriedIn, err := balance(roundingAccount(w.ID))
	if err != nil {
		return nil, err
	}
	b.Describe(w.ID, "invoice "+o.start.Format(time.DateOnly)+" – "+o.end.Format(time.DateOnly), nil)

	inv := Invoice{ID: InvoiceID(uuid.New()), WalletID: w.ID, CustomerID: w.CustomerID, Currency: w.Asset,
		MinorUnits: MinorUnits(w.Asset), PeriodStart: o.start, PeriodEnd: o.end, Lines: []InvoiceLine{},
		CarriedIn: carriedIn, Status: InvoiceIssued, EntryID: b.EntryID(), CreatedAt: b.Now()}
	var usage, topups ledger.Amount
	for _, l := range s.openLines(w.ID) {
		if l.amount.IsZero() {
			continue
		}
		price := l.amount.Decimal()
		switch {
		case l.unitPrice != nil:
			price = *l.unitPrice
		case !l.quantity.IsZero():
			price = l.amount.Decimal().DivRound(l.quantity, ledger.Scale)
		}
		inv.Lines = append(inv.Lines, InvoiceLine{Kind: LineUsage, Description: l.description, Quantity: l.quantity, UnitPrice: price, Amount: l.amount})
		usage = usage.Add(l.amount)
	}
	// The receivable is the authority: what the lines do not explain came
	// from debits and hold captures.
	if rest := overage.Sub(usage); !rest.IsZero() {
		inv.Lines = append(inv.Lines, InvoiceLine{Kind: LineDebits, Description: "Debits and captures not covered by credits",
			Quantity: decimal.NewFromInt(1), UnitPrice: rest.Decimal(), Amount: rest})
	}
	for _, t := range s.billable[w.ID] {
		id := t.ID
		inv.Lines = append(inv.Lines, InvoiceLine{Kind: LineTopup, Description: "Auto top-up " + t.CreatedAt.Format(time.DateOnly),
			Quantity: decimal.NewFromInt(1), UnitPrice: t.Amount.Decimal(), Amount: t.Amount, TopupID: &id})
		topups = topups.Add(t.Amount)
	}
	if rest := billable.Sub(topups); !rest.IsZero() {
		inv.Lines = append(inv.Lines, InvoiceLine{Kind: LineAdjustment, Description: "Voided top-up credits",
			Quantity: decimal.NewFromInt(1), UnitPrice: rest.Decimal(), Amount: rest})
	}
	inv.Subtotal = overage.Add(billable)
	exact := inv.Subtotal.Add(carriedIn)
	total, err := ledger.NewAmount(exact.Decimal().Truncate(inv.MinorUnits))
	if err != nil {
		return nil, err
	}
	inv.Total, inv.CarriedOut = total, exact.Sub(total)

	// Settle the receivables into the invoice; move the carry.
	var ts []ledger.Transfer
	for _, t := range []ledger.Transfer{
		{Debit: o.sys.receivable, Credit: w.overage, Amount: overage},
		{Debit: o.sys.receivable, Credit: billableAccount(w.ID), Amount: billable},
		{Debit: o.sys.receivable, Credit: roundingAccount(w.ID), Amount: carriedIn},
		{Debit: roundingAccount(w.ID), Credit: o.sys.receivable, Amount: inv.CarriedOut},
	} {
		switch t.Amount.Sign() {
		case 1:
			ts = append(ts, t)
		case -1: // a credit: the transfer the other way
			ts = append(ts, ledger.Transfer{Debit: t.Credit, Credit: t.Debit, Amount: t.Amount.Neg()})
		}
	}
	if len(ts) > 0 {
		if err := b.Post(ledger.Postings(ts...)...); err != nil {
			return nil, err
		}
	}
	s.issue(b, w, &inv)
	// The next cycle to close is the one after this; an early close moves
	// the scheduler past the cycle it closed.
	if _, after := Cycle(w.CreatedAt, o.end); w.nextCycleEnd == nil || w.nextCycleEnd.Before(after) {
		saved := w.nextCycleEnd
		w.nextCycleEnd = &after
		s.cycleDirty[w] = struct{}{}
		b.OnUndo(func() { w.nextCycleEnd = saved })
	}
	if err := b.Emit(TopicInvoiceCreated, w.ID, inv); err != nil {
		return nil, err
	}
	if err := s.react(b, w); err != nil {
		return nil, err
	}
	return inv, nil
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
	if !s.lineReset[w] {
		for _, k := range s.lineKeys[w] {
			add(k, s.lineLoaded[w][k])
		}
	}
	var delta []string
	for k := range s.lineDeltas[w] {
		delta = append(delta, k)
	}
	sort.Strings(delta)
	for _, k := range delta {
		add(k, *s.lineDeltas[w][k])
	}
	sort.SliceStable(keys, func(i, j int) bool { return sum[keys[i]].description < sum[keys[j]].description })
	out := make([]overageLine, len(keys))
	for i, k := range keys {
		out[i] = *sum[k]
	}
	return out
}

// issue records inv: the open lines and billable top-ups are now invoiced.
func (s *stage) issue(b *ledger.Batch, w *walletState, inv *Invoice) {
	savedDeltas, savedReset, savedBillable := s.lineDeltas[w.ID], s.lineReset[w.ID], s.billable[w.ID]
	for _, t := range savedBillable {
		prev := t.InvoiceID
		id := inv.ID
		t.InvoiceID = &id
		_, was := s.dirtyTopups[t]
		s.dirtyTopups[t] = struct{}{}
		b.OnUndo(func() {
			t.InvoiceID = prev
			if !was {
				delete(s.dirtyTopups, t)
			}
		})
	}
	delete(s.lineDeltas, w.ID)
	s.lineReset[w.ID] = true
	s.billable[w.ID] = nil
	s.invoices = append(s.invoices, inv)
	b.OnUndo(func() {
		s.lineDeltas[w.ID], s.lineReset[w.ID], s.billable[w.ID] = savedDeltas, savedReset, savedBillable
		s.invoices = s.invoices[:len(s.invoices)-1]
	})
}

// CloseCycle closes the wallet's current billing cycle now and issues its
// invoice. Asking again in the same cycle returns the same invoice
// (replayed). Usage after an early close is billed with the next cycle.
func (s *Service) CloseCycle(ctx context.Context, id WalletID) (Invoice, bool, error) {
	w, err := s.wallet(ctx, id)
	if err != nil {
		return Invoice{}, false, err
	}
	start, end := Cycle(w.CreatedAt, s.now())
	return s.closeCycle(ctx, w, start, end)
}

func (s *Service) closeCycle(ctx context.Context, w Wallet, start, end time.Time) (Invoice, bool, error) {
	op, err := s.closeCycleOp(ctx, w, start, end)
	if err != nil {
		return Invoice{}, false, err
	}
	return submit[Invoice](ctx, s, op)
}

func (s *Service) closeCycleOp(ctx context.Context, w Wallet, start, end time.Time) (*closeCycleOp, error) {
	if err := s.ensureWalletAccounts(ctx, w); err != nil {
		return nil, err
	}
	sys, err := s.system(ctx, w.Asset)
	if err != nil {
		return nil, err
	}
	return &closeCycleOp{base: base{key: cycleKey(w.ID, start), walletID: w.ID, customer: w.CustomerID, sys: sys},
		start: start, end: end}, nil
}

// CloseDueCycles closes the cycles whose end has passed (the scheduler).
// Several schedulers may run: the cycle's key makes each close once. All
// due closes are enqueued before any is waited for, so they share batches.
//
// Wallets made before next_cycle_end existed have none: their first
// cycle's end stands in for it, and closing it sets the column, so they
// catch up one cycle per pass like any wallet whose server was down.
func (s *Service) CloseDueCycles(ctx context.Context) (int, error) {
	now := s.now()
	rows, err := s.db.Pool.Query(ctx, `SELECT `+walletColumns+`, w.next_cycle_end FROM wallets w
		WHERE w.next_cycle_end <= $1 OR (w.next_cycle_end IS NULL AND w.created_at <= $2)
		ORDER BY COALESCE(w.next_cycle_end, w.created_at) LIMIT 500`, now, now.AddDate(0, -1, 0))
	if err != nil {
		return 0, fmt.Errorf("find due cycles: %w", err)
	}
	type dueWallet struct {
		Wallet
		end *time.Time
	}
	due, err := collect(rows, func(r pgx.Row) (dueWallet, error) {
		var d dueWallet
		w, _, err := scanWallet(r, &d.end)
		d.Wallet = w
		return d, err
	})
	if err != nil {
		return 0, fmt.Errorf("find due cycles: %w", err)
	}
	pend := make([]*ledger.Pending, 0, len(due))
	for _, d := range due {
		end := d.end
		if end == nil {
			_, first := Cycle(d.CreatedAt, d.CreatedAt)
			if first.After(now) {
				continue // a month's length in SQL is not the calendar's
			}
			end = &first
		}
		// The cycle that ended at next_cycle_end; a server down for months
		// catches up one cycle per pass.
		start, stop := Cycle(d.CreatedAt, end.Add(-time.Microsecond))
		op, err := s.closeCycleOp(ctx, d.Wallet, start, stop)
		if err != nil {
			return 0, err
		}
		p, err := s.l.Enqueue(ctx, op)
		if err != nil {
			return 0, err
		}
		pend = append(pend, p)
	}
	n, err := ledger.WaitPosted(ctx, pend)
	if err != nil {
		return n, fmt.Errorf("close cycles: %w", err)
	}
	return n, nil
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
		return Invoice{}, fmt.Errorf("invoice %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Invoice{}, fmt.Errorf("read invoice: %w", err)
	}
	return inv, nil
}

// Invoices lists a customer's invoices like Topups lists top-ups.
func (s *Service) Invoices(ctx context.Context, customerID string, after *cursor.Cursor, limit int) ([]Invoice, *cursor.Cursor, error) {
	if _, err := s.customer(ctx, customerID); err != nil {
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
