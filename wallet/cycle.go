package wallet

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/creditledger/creditledger/ledger"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// closeCycleOp closes one billing cycle of a wallet and issues its invoice.
// Its key names the cycle, so the cycle closes once however many times it is
// asked (the API, the scheduler, two processes).
type closeCycleOp struct {
	base
	start, end time.Time
}

// needs asks for the wallet's open invoice lines and billable top-ups.
func (o *closeCycleOp) needs(n *need) {
	o.base.needs(n)
	n.closing = append(n.closing, uuid.UUID(o.walletID))
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

func (o *closeCycleOp) Apply(_ context.Context, b ledger.Batch) (any, error) {
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
	for _, t := range s.topups.billable[w.ID] {
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
		s.cycles.open()
		s.cycles.moved[w] = struct{}{}
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

// CloseCycle closes the wallet's current billing cycle now and issues its
// invoice. Asking again in the same cycle returns the same invoice
// (replayed). Usage after an early close is billed with the next cycle.
func (s *Service) CloseCycle(ctx context.Context, id WalletID) (ledger.Result[Invoice], error) {
	w, err := s.Wallet(ctx, id)
	if err != nil {
		return ledger.Result[Invoice]{}, err
	}
	start, end := Cycle(w.CreatedAt, s.now())
	return s.closeCycle(ctx, w, start, end)
}

func (s *Service) closeCycle(ctx context.Context, w Wallet, start, end time.Time) (ledger.Result[Invoice], error) {
	op, err := s.closeCycleOp(ctx, w, start, end)
	if err != nil {
		return ledger.Result[Invoice]{}, err
	}
	return submit[Invoice](ctx, s, op)
}

func (s *Service) closeCycleOp(ctx context.Context, w Wallet, start, end time.Time) (*closeCycleOp, error) {
	if err := s.ensureWalletAccounts(ctx, w); err != nil {
		return nil, err
	}
	sys, err := s.System(ctx, w.Asset)
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

// cycleBook is the batch's cycles and invoices: the open invoice lines of
// wallets whose cycle closes and what the batch adds to them (a reset
// wallet's stored lines went into an invoice), the invoices issued, and the
// wallets whose next close moved.
type cycleBook struct {
	loaded   map[WalletID]map[string]overageLine
	keys     map[WalletID][]string
	deltas   map[WalletID]map[string]*overageLine
	reset    map[WalletID]bool
	invoices []*Invoice
	moved    map[*walletState]struct{} // next_cycle_end to write
}

// open readies the book for writing. Most batches never open it (a debit
// neither bills usage nor closes a cycle), and the stage skips its flush.
func (c *cycleBook) open() {
	if c.deltas != nil {
		return
	}
	c.loaded, c.keys = map[WalletID]map[string]overageLine{}, map[WalletID][]string{}
	c.deltas, c.reset = map[WalletID]map[string]*overageLine{}, map[WalletID]bool{}
	c.moved = map[*walletState]struct{}{}
}

// flushLines adds the batch's uncovered usage to the open invoice lines, and
// clears those that went into an invoice.
func (s *stage) flushLines(ctx context.Context, b ledger.StageBatch) error {
	tx := b.Tx()
	var reset []uuid.UUID
	for w, r := range s.cycles.reset {
		if r {
			reset = append(reset, uuid.UUID(w))
		}
	}
	if len(reset) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM overage_lines WHERE wallet_id = ANY($1)`, reset); err != nil {
			return fmt.Errorf("clear invoiced lines: %w", err)
		}
	}
	var (
		wallets                    []uuid.UUID
		keys, descs, qtys, amounts []string
		prices                     []*string
	)
	for w, m := range s.cycles.deltas {
		ks := make([]string, 0, len(m))
		for k := range m {
			ks = append(ks, k)
		}
		sort.Strings(ks) // a stable order of row locks
		for _, k := range ks {
			l := m[k]
			wallets, keys, descs = append(wallets, uuid.UUID(w)), append(keys, k), append(descs, l.description)
			qtys, amounts = append(qtys, l.quantity.String()), append(amounts, l.amount.String())
			var p *string
			if l.unitPrice != nil {
				str := l.unitPrice.String()
				p = &str
			}
			prices = append(prices, p)
		}
	}
	if len(wallets) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO overage_lines (wallet_id, line_key, description, quantity, amount, unit_price)
		SELECT u.w, u.k, u.d, u.q::NUMERIC, u.a::NUMERIC, u.p::NUMERIC
		FROM unnest($1::UUID[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[]) AS u(w, k, d, q, a, p)
		ON CONFLICT (wallet_id, line_key) DO UPDATE SET quantity = overage_lines.quantity + excluded.quantity,
			amount = overage_lines.amount + excluded.amount`,
		wallets, keys, descs, qtys, amounts, prices); err != nil {
		return fmt.Errorf("write invoice lines: %w", err)
	}
	return nil
}

func (s *stage) flushInvoices(ctx context.Context, b ledger.StageBatch) error {
	for _, inv := range s.cycles.invoices {
		lines, err := json.Marshal(inv.Lines)
		if err != nil {
			return fmt.Errorf("invoice lines: %w", err)
		}
		if _, err := b.Tx().Exec(ctx, `INSERT INTO invoices (id, wallet_id, customer_id, currency, period_start, period_end, lines,
				subtotal, carried_in, total, carried_out, status, entry_id, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			inv.ID, inv.WalletID, inv.CustomerID, inv.Currency, inv.PeriodStart, inv.PeriodEnd, string(lines),
			inv.Subtotal, inv.CarriedIn, inv.Total, inv.CarriedOut, inv.Status, inv.EntryID, inv.CreatedAt); err != nil {
			return fmt.Errorf("insert invoice: %w", err)
		}
	}
	return nil
}

// loadLines reads the open invoice lines of wallets whose cycle closes.
func (s *stage) loadLines(ctx context.Context, tx pgx.Tx, closing []uuid.UUID) error {
	s.cycles.open()
	rows, err := tx.Query(ctx, `SELECT wallet_id, line_key, description, quantity, amount, unit_price
		FROM overage_lines WHERE wallet_id = ANY($1) ORDER BY wallet_id, line_key`, closing)
	if err != nil {
		return fmt.Errorf("load invoice lines: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			w     WalletID
			key   string
			l     overageLine
			price *decimal.Decimal
		)
		if err := rows.Scan(&w, &key, &l.description, &l.quantity, &l.amount, &price); err != nil {
			return fmt.Errorf("load invoice lines: %w", err)
		}
		l.unitPrice = price
		if s.cycles.loaded[w] == nil {
			s.cycles.loaded[w] = map[string]overageLine{}
		}
		s.cycles.loaded[w][key] = l
		s.cycles.keys[w] = append(s.cycles.keys[w], key)
	}
	return rows.Err()
}

// overageLine is one line's running sum since the last invoice.
type overageLine struct {
	description string
	quantity    decimal.Decimal
	amount      ledger.Amount
	unitPrice   *decimal.Decimal
}

// addOverage adds the uncovered part of a usage charge to its line.
func (s *stage) addOverage(b ledger.Batch, w WalletID, l UsageLine, charged, uncovered ledger.Amount) {
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
	s.cycles.open()
	m := s.cycles.deltas[w]
	if m == nil {
		m = map[string]*overageLine{}
		s.cycles.deltas[w] = m
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
