package wallet

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
)

// What a wallet owes: the part of usage charges its credits did not cover,
// summed per meter and dimensions as it happens (the open lines), and the
// moment an invoice takes it all (Settle). Invoices themselves — their
// lines in money, totals, numbers, life — are the billing package's.

// owedBook is what the batch's wallets owe: the open lines of wallets that
// settle, what the batch adds to any wallet's lines (a reset wallet's
// stored lines went into an invoice), and the wallets whose next close
// moved.
type owedBook struct {
	loaded map[WalletID]map[string]overageLine
	keys   map[WalletID][]string
	deltas map[WalletID]map[string]*overageLine
	reset  map[WalletID]bool
	moved  map[*walletState]struct{} // next_cycle_end to write
}

// open readies the book for writing. Most batches never open it (a debit
// neither bills usage nor settles), and the stage skips its flush.
func (c *owedBook) open() {
	if c.deltas != nil {
		return
	}
	c.loaded, c.keys = map[WalletID]map[string]overageLine{}, map[WalletID][]string{}
	c.deltas, c.reset = map[WalletID]map[string]*overageLine{}, map[WalletID]bool{}
	c.moved = map[*walletState]struct{}{}
}

// overageLine is one line's running sum since the last invoice.
type overageLine struct {
	description string
	quantity    decimal.Decimal
	amount      ledger.Amount
	unitPrice   *decimal.Decimal
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
	s.owed.open()
	m := s.owed.deltas[w]
	if m == nil {
		m = map[string]*overageLine{}
		s.owed.deltas[w] = m
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
	if !s.owed.reset[w] {
		for _, k := range s.owed.keys[w] {
			add(k, s.owed.loaded[w][k])
		}
	}
	var delta []string
	for k := range s.owed.deltas[w] {
		delta = append(delta, k)
	}
	sort.Strings(delta)
	for _, k := range delta {
		add(k, *s.owed.deltas[w][k])
	}
	sort.SliceStable(keys, func(i, j int) bool { return sum[keys[i]].description < sum[keys[j]].description })
	out := make([]overageLine, len(keys))
	for i, k := range keys {
		out[i] = *sum[k]
	}
	return out
}

// Owed is one open usage line: what a meter's usage with these dimensions
// left uncovered since the wallet last settled.
type Owed struct {
	Description string
	Quantity    decimal.Decimal
	Amount      ledger.Amount
	UnitPrice   *decimal.Decimal // per-unit prices; nil: another model
}

// OwedTopup is an immediate top-up credited before it was paid.
type OwedTopup struct {
	ID        TopupID
	CreatedAt time.Time
	Amount    ledger.Amount
}

// Settlement is what Settle moved: everything the wallet owed since it last
// settled, in its asset.
type Settlement struct {
	Wallet Wallet
	Usage  []Owed        // uncovered usage per meter and dimensions, in a stable order
	Debits ledger.Amount // the overage the usage lines do not explain: debits and hold captures
	Topups []OwedTopup
	// Adjustment is the billable balance the top-ups do not explain: what
	// voids took back from top-ups already invoiced (negative).
	Adjustment ledger.Amount
	// Overage and Billable are the two receivables moved: Overage is the
	// usage lines plus Debits, Billable the top-ups plus Adjustment.
	Overage, Billable ledger.Amount
}

// Settle moves what wallet id owes — its overage receivable and its
// billable top-ups — to account to, inside batch b, and marks it invoiced
// by inv: the open usage lines start again from zero and the top-ups name
// the invoice. A stage that feeds the wallet module asked for it with
// WantSettle. Settling twice in one batch finds nothing owed the second
// time.
func Settle(b ledger.Batch, id WalletID, to ledger.AccountID, inv InvoiceID) (Settlement, error) {
	s, w, err := walletFor(b, id)
	if err != nil {
		return Settlement{}, err
	}
	posted := func(acc ledger.AccountID) (ledger.Amount, error) {
		a, ok := b.Account(acc)
		if !ok {
			return ledger.Zero, fmt.Errorf("account %s of wallet %s not locked", acc, w.ID)
		}
		return a.Posted(ledger.Debit), nil
	}
	st := Settlement{Wallet: w.Wallet}
	if st.Overage, err = posted(w.overage); err != nil {
		return Settlement{}, err
	}
	if st.Billable, err = posted(billableAccount(w.ID)); err != nil {
		return Settlement{}, err
	}
	var usage, topups ledger.Amount
	for _, l := range s.openLines(w.ID) {
		if l.amount.IsZero() {
			continue
		}
		st.Usage = append(st.Usage, Owed{Description: l.description, Quantity: l.quantity, Amount: l.amount, UnitPrice: l.unitPrice})
		usage = usage.Add(l.amount)
	}
	// The receivable is the authority: what the lines do not explain came
	// from debits and hold captures.
	st.Debits = st.Overage.Sub(usage)
	for _, t := range s.topups.billable[w.ID] {
		st.Topups = append(st.Topups, OwedTopup{ID: t.ID, CreatedAt: t.CreatedAt, Amount: t.Amount})
		topups = topups.Add(t.Amount)
	}
	st.Adjustment = st.Billable.Sub(topups)
	var ts []ledger.Transfer
	for _, t := range []ledger.Transfer{
		{Debit: to, Credit: w.overage, Amount: st.Overage},
		{Debit: to, Credit: billableAccount(w.ID), Amount: st.Billable},
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
			return Settlement{}, err
		}
	}
	s.markInvoiced(b, w, inv)
	// The overage left zero: overage_started re-arms.
	if err := s.react(b, w); err != nil {
		return Settlement{}, err
	}
	return st, nil
}

// WantSettle asks the wallet stage of batch b to load wallet id with what
// it owes (its open lines and billable top-ups), for an op that settles it.
func WantSettle(b ledger.StageBatch, id WalletID) error {
	s, err := stageOf(b)
	if err != nil {
		return err
	}
	s.wanted = append(s.wanted, id)
	s.settling = append(s.settling, id)
	return nil
}

// ScheduleClose records, inside batch b, when wallet id's next billing
// cycle closes (wallets.next_cycle_end, read by the scheduler). It only
// ever moves forward: an early close moves the scheduler past the cycle it
// closed, and a late one never brings it back.
func ScheduleClose(b ledger.Batch, id WalletID, end time.Time) error {
	s, w, err := walletFor(b, id)
	if err != nil {
		return err
	}
	if w.nextCycleEnd != nil && !w.nextCycleEnd.Before(end) {
		return nil
	}
	saved := w.nextCycleEnd
	w.nextCycleEnd = &end
	s.owed.open()
	s.owed.moved[w] = struct{}{}
	b.OnUndo(func() { w.nextCycleEnd = saved })
	return nil
}

// markInvoiced records that inv took what w owed: the open lines and the
// billable top-ups.
func (s *stage) markInvoiced(b ledger.Batch, w *walletState, inv InvoiceID) {
	s.owed.open()
	savedDeltas, savedReset, savedBillable := s.owed.deltas[w.ID], s.owed.reset[w.ID], s.topups.billable[w.ID]
	for _, t := range savedBillable {
		prev := t.InvoiceID
		id := inv
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
	delete(s.owed.deltas, w.ID)
	s.owed.reset[w.ID] = true
	s.topups.billable[w.ID] = nil
	b.OnUndo(func() {
		s.owed.deltas[w.ID], s.owed.reset[w.ID], s.topups.billable[w.ID] = savedDeltas, savedReset, savedBillable
	})
}

// loadLines reads the open invoice lines of wallets whose cycle closes.
func (s *stage) loadLines(ctx context.Context, tx pgx.Tx, closing []uuid.UUID) error {
	s.owed.open()
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
		if s.owed.loaded[w] == nil {
			s.owed.loaded[w] = map[string]overageLine{}
		}
		s.owed.loaded[w][key] = l
		s.owed.keys[w] = append(s.owed.keys[w], key)
	}
	return rows.Err()
}

// flushLines adds the batch's uncovered usage to the open invoice lines, and
// clears those that went into an invoice.
func (s *stage) flushLines(ctx context.Context, b ledger.StageBatch) error {
	tx := b.Tx()
	var reset []uuid.UUID
	for w, r := range s.owed.reset {
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
	for w, m := range s.owed.deltas {
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

// DueClose is a wallet whose billing cycle is due to close: End is its
// next_cycle_end, nil for wallets made before the column existed.
type DueClose struct {
	Wallet Wallet
	End    *time.Time
}

// DueCloses lists, oldest first, at most limit wallets whose cycle is due
// to close at now: next_cycle_end passed, or none recorded and the wallet
// older than a month (its first cycle's end stands in for it).
func (s *Service) DueCloses(ctx context.Context, now time.Time, limit int) ([]DueClose, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT `+walletColumns+`, w.next_cycle_end FROM wallets w
		WHERE (w.next_cycle_end <= $1 OR (w.next_cycle_end IS NULL AND w.created_at <= $2))
			-- A subscribed customer's wallets are billed by its subscription's periods.
			AND NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.customer_id = w.customer_id AND s.status = 'active')
		ORDER BY COALESCE(w.next_cycle_end, w.created_at) LIMIT $3`, now, now.AddDate(0, -1, 0), limit)
	if err != nil {
		return nil, fmt.Errorf("find due cycles: %w", err)
	}
	due, err := pg.Collect(rows, func(r pgx.Row) (DueClose, error) {
		var d DueClose
		w, _, err := scanWallet(r, &d.End)
		d.Wallet = w
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("find due cycles: %w", err)
	}
	return due, nil
}
