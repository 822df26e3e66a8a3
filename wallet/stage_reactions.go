package wallet

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/creditledger/creditledger/ledger"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// topupBook is the batch's reactions and top-ups: the top-ups ops settle or
// start, the immediate ones not yet invoiced of wallets whose cycle closes,
// and the wallets whose reaction state changed.
type topupBook struct {
	byID     map[TopupID]*topupState
	fresh    []*topupState
	dirty    map[*topupState]struct{}
	billable map[WalletID][]*topupState // immediate top-ups not yet invoiced
	reacted  map[*walletState]struct{}  // reactions to write
}

func (t *topupBook) reset() {
	t.byID, t.fresh, t.dirty = map[TopupID]*topupState{}, nil, map[*topupState]struct{}{}
	t.billable, t.reacted = map[WalletID][]*topupState{}, map[*walletState]struct{}{}
}

// flushWallets writes the wallets' reactions and next cycle ends, which the
// reactions and the cycles change.
func (s *stage) flushWallets(ctx context.Context, b ledger.StageBatch) error {
	dirty := map[*walletState]struct{}{}
	for w := range s.topups.reacted {
		dirty[w] = struct{}{}
	}
	for w := range s.cycles.moved {
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
		if _, ok := s.topups.reacted[w]; ok {
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

func (s *stage) flushTopups(ctx context.Context, b ledger.StageBatch) error {
	tx := b.Tx()
	if n := len(s.topups.fresh); n > 0 {
		ids, wallets := make([]uuid.UUID, n), make([]uuid.UUID, n)
		customers, assets, kinds, payments, statuses := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		amounts, avail := make([]ledger.Amount, n), make([]ledger.Amount, n)
		for i, t := range s.topups.fresh {
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
	for t := range s.topups.dirty {
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

// loadTopups reads the top-ups ops settle, and the immediate top-ups not yet
// invoiced of wallets whose cycle closes.
func (s *stage) loadTopups(ctx context.Context, tx pgx.Tx, ids, closing []uuid.UUID) error {
	if len(ids) == 0 && len(closing) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, topupSelect+` WHERE id = ANY($1)
		OR (wallet_id = ANY($2) AND payment = 'immediate' AND status = 'succeeded' AND invoice_id IS NULL)
		ORDER BY created_at, id`, ids, closing)
	if err != nil {
		return fmt.Errorf("load top-ups: %w", err)
	}
	list, err := collect(rows, scanTopup)
	if err != nil {
		return fmt.Errorf("load top-ups: %w", err)
	}
	for _, t := range list {
		ts := &topupState{Topup: t}
		s.topups.byID[t.ID] = ts
		if t.Payment == PaymentImmediate && t.Status == TopupSucceeded && t.InvoiceID == nil {
			s.topups.billable[t.WalletID] = append(s.topups.billable[t.WalletID], ts)
		}
	}
	return nil
}
