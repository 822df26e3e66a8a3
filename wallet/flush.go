package wallet

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/ledger"
)

// flushReactions writes what the batch's reactions and invoices changed:
// wallets' reactions and cycle ends, top-ups, invoice lines and invoices,
// one statement per table.
func (s *stage) flushReactions(ctx context.Context, b *ledger.Batch) error {
	for _, f := range []func(context.Context, *ledger.Batch) error{s.flushWallets, s.flushTopups, s.flushLines, s.flushInvoices} {
		if err := f(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

func (s *stage) flushWallets(ctx context.Context, b *ledger.Batch) error {
	dirty := map[*walletState]struct{}{}
	for w := range s.reactDirty {
		dirty[w] = struct{}{}
	}
	for w := range s.cycleDirty {
		dirty[w] = struct{}{}
	}
	if len(dirty) == 0 {
		return nil
	}
	var (
		ids    []uuid.UUID
		reacts []*string
		ends   []*time.Time
	)
	for w := range dirty {
		ids = append(ids, uuid.UUID(w.ID))
		var r *string
		if _, ok := s.reactDirty[w]; ok {
			raw, err := json.Marshal(w.react)
			if err != nil {
				return fmt.Errorf("wallet %s reactions: %w", w.ID, err)
			}
			str := string(raw)
			r = &str
		}
		reacts = append(reacts, r)
		ends = append(ends, w.nextCycleEnd)
	}
	if _, err := b.Tx().Exec(ctx, `UPDATE wallets AS w SET reactions = COALESCE(u.r::JSONB, w.reactions),
			next_cycle_end = COALESCE(u.n, w.next_cycle_end)
		FROM unnest($1::UUID[], $2::TEXT[], $3::TIMESTAMPTZ[]) AS u(id, r, n)
		WHERE w.id = u.id`, ids, reacts, ends); err != nil {
		return fmt.Errorf("update wallet reactions: %w", err)
	}
	return nil
}

func (s *stage) flushTopups(ctx context.Context, b *ledger.Batch) error {
	tx := b.Tx()
	if n := len(s.newTopups); n > 0 {
		ids, wallets := make([]uuid.UUID, n), make([]uuid.UUID, n)
		customers, assets, kinds, payments, statuses := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		amounts, avail := make([]ledger.Amount, n), make([]ledger.Amount, n)
		for i, t := range s.newTopups {
			ids[i], wallets[i], customers[i], assets[i] = uuid.UUID(t.ID), uuid.UUID(t.WalletID), t.CustomerID, t.Asset
			kinds[i], payments[i], statuses[i], amounts[i], avail[i] = string(t.Kind), string(t.Payment), string(t.Status), t.Amount, t.AvailableAtRequest
		}
		if _, err := tx.Exec(ctx, `INSERT INTO topups (id, wallet_id, customer_id, asset, amount, kind, payment, status, available_at_request, created_at)
			SELECT u.id, u.w, u.c, u.a, u.amt, u.k, u.p, u.st, u.av, $10
			FROM unnest($1::UUID[], $2::UUID[], $3::TEXT[], $4::TEXT[], $5::NUMERIC[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::NUMERIC[])
				AS u(id, w, c, a, amt, k, p, st, av)`,
			ids, wallets, customers, assets, amounts, kinds, payments, statuses, avail, b.Now()); err != nil {
			return fmt.Errorf("insert top-ups: %w", err)
		}
	}
	var changed []*topupState
	for t := range s.dirtyTopups {
		if !t.isNew {
			changed = append(changed, t)
		}
	}
	if n := len(changed); n > 0 {
		ids, statuses := make([]uuid.UUID, n), make([]string, n)
		grants, invoices := make([]*uuid.UUID, n), make([]*uuid.UUID, n)
		reasons := make([]*string, n)
		done := make([]*time.Time, n)
		for i, t := range changed {
			ids[i], statuses[i], done[i], reasons[i] = uuid.UUID(t.ID), string(t.Status), t.CompletedAt, nullText(t.FailureReason)
			if t.GrantID != nil {
				g := uuid.UUID(*t.GrantID)
				grants[i] = &g
			}
			if t.InvoiceID != nil {
				v := uuid.UUID(*t.InvoiceID)
				invoices[i] = &v
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE topups AS t SET status = u.st, grant_id = u.g, invoice_id = u.inv,
				failure_reason = u.r, completed_at = u.d
			FROM unnest($1::UUID[], $2::TEXT[], $3::UUID[], $4::UUID[], $5::TEXT[], $6::TIMESTAMPTZ[]) AS u(id, st, g, inv, r, d)
			WHERE t.id = u.id`, ids, statuses, grants, invoices, reasons, done); err != nil {
			return fmt.Errorf("update top-ups: %w", err)
		}
	}
	return nil
}

func (s *stage) flushLines(ctx context.Context, b *ledger.Batch) error {
	tx := b.Tx()
	var reset []uuid.UUID
	for w, r := range s.lineReset {
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
	for w, m := range s.lineDeltas {
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

func (s *stage) flushInvoices(ctx context.Context, b *ledger.Batch) error {
	for _, inv := range s.invoices {
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
