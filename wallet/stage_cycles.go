package wallet

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/creditledger/creditledger/ledger"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

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

func (c *cycleBook) clear() {
	c.loaded, c.keys = map[WalletID]map[string]overageLine{}, map[WalletID][]string{}
	c.deltas, c.reset = map[WalletID]map[string]*overageLine{}, map[WalletID]bool{}
	c.invoices, c.moved = nil, map[*walletState]struct{}{}
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
	if len(closing) == 0 {
		return nil
	}
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
