package wallet

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/ledger"
)

// grantBook is the batch's grants and burn-down: the grants loaded (live, or
// named by an op), the ones the batch made and changed, and each wallet's
// grant sums for the balances ops answer with.
type grantBook struct {
	byID   map[GrantID]*grantState
	fresh  []*grantState
	dirty  map[*grantState]struct{}
	totals map[WalletID]*totals
}

func (g *grantBook) reset() {
	g.byID, g.fresh, g.dirty, g.totals = map[GrantID]*grantState{}, nil, map[*grantState]struct{}{}, map[WalletID]*totals{}
}

type grantState struct {
	Grant
	account        ledger.AccountID
	fundingAccount *ledger.AccountID // set when not the funding account of its kind
	isNew          bool
}

// totals are a wallet's grant sums over all its grants, kept current as the
// batch changes them, for the balance an operation answers with.
type totals struct {
	granted, expired, voided ledger.Amount
}

// loadGrants reads the grants that can still matter — active ones, ones
// whose account still holds a balance (a hold outlived their void or
// expiry), and ones an op names — and declares their accounts.
func (s *stage) loadGrants(ctx context.Context, b ledger.StageBatch, wids, gids []uuid.UUID) error {
	rows, err := b.Tx().Query(ctx, grantSelect+`, bal.credits_posted - bal.debits_posted, g.funding_account_id
		FROM grants g JOIN ledger_balances bal ON bal.account_id = g.account_id AND bal.shard = 0
		WHERE g.wallet_id = ANY($1)
			AND (g.status = 'active' OR bal.credits_posted > bal.debits_posted OR g.id = ANY($2))`, wids, gids)
	if err != nil {
		return fmt.Errorf("load grants: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			posted  ledger.Amount
			funding *ledger.AccountID
		)
		g, account, err := scanGrant(rows, &posted, &funding)
		if err != nil {
			return err
		}
		gs := &grantState{Grant: g, account: account, fundingAccount: funding}
		s.grants.byID[g.ID] = gs
		if w := s.wallets[g.WalletID]; w != nil {
			w.grants = append(w.grants, gs)
		}
		b.DeclareAccount(account)
		if funding != nil && slices.Contains(gids, uuid.UUID(g.ID)) {
			// A void gives the rest back to it (revenue for a credit back,
			// the wallet's billable account for an immediate top-up).
			b.DeclareAccount(*funding)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load grants: %w", err)
	}
	return nil
}

// flushGrants inserts the batch's new grants and writes changed ones.
func (s *stage) flushGrants(ctx context.Context, b ledger.StageBatch) error {
	tx := b.Tx()
	if n := len(s.grants.fresh); n > 0 {
		ids, wallets, accounts := make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n)
		kinds, statuses := make([]string, n), make([]string, n)
		amounts := make([]ledger.Amount, n)
		prios := make([]int32, n)
		eff := make([]time.Time, n)
		exp := make([]*time.Time, n)
		costs := make([]*ledger.Amount, n)
		descs, metas := make([]*string, n), make([]*string, n)
		fundings := make([]*uuid.UUID, n)
		for i, g := range s.grants.fresh {
			if g.fundingAccount != nil {
				u := uuid.UUID(*g.fundingAccount)
				fundings[i] = &u
			}
			ids[i], wallets[i], accounts[i] = uuid.UUID(g.ID), uuid.UUID(g.WalletID), uuid.UUID(g.account)
			kinds[i], statuses[i], amounts[i], prios[i] = string(g.Kind), string(g.Status), g.Amount, int32(g.Priority)
			eff[i], exp[i], costs[i] = g.EffectiveAt, g.ExpiresAt, g.CostBasis
			descs[i], metas[i] = nullText(g.Description), nullText(string(g.Metadata))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO grants (id, wallet_id, account_id, kind, amount, priority, effective_at, expires_at,
				cost_basis, description, metadata, status, created_at, funding_account_id)
			SELECT u.id, u.w, u.a, u.k, u.amt, u.p, u.eff, u.exp, u.cost, u.descr, u.meta::JSONB, u.st, $13, u.f
			FROM unnest($1::UUID[], $2::UUID[], $3::UUID[], $4::TEXT[], $5::NUMERIC[], $6::INT[], $7::TIMESTAMPTZ[],
				$8::TIMESTAMPTZ[], $9::NUMERIC[], $10::TEXT[], $11::TEXT[], $12::TEXT[], $14::UUID[])
				AS u(id, w, a, k, amt, p, eff, exp, cost, descr, meta, st, f)`,
			ids, wallets, accounts, kinds, amounts, prios, eff, exp, costs, descs, metas, statuses, b.Now(), fundings); err != nil {
			return fmt.Errorf("insert grants: %w", err)
		}
	}
	var changed []*grantState
	for g := range s.grants.dirty {
		if !g.isNew {
			changed = append(changed, g)
		}
	}
	if n := len(changed); n > 0 {
		ids, statuses := make([]uuid.UUID, n), make([]string, n)
		expired, voided := make([]ledger.Amount, n), make([]ledger.Amount, n)
		expAt, voidAt := make([]*time.Time, n), make([]*time.Time, n)
		for i, g := range changed {
			ids[i], statuses[i], expired[i], voided[i], expAt[i], voidAt[i] = uuid.UUID(g.ID), string(g.Status), g.Expired, g.Voided, g.ExpiredAt, g.VoidedAt
		}
		if _, err := tx.Exec(ctx, `UPDATE grants AS g SET status = u.st, expired_amount = u.ex, voided_amount = u.vo,
				expired_at = u.exat, voided_at = u.voat
			FROM unnest($1::UUID[], $2::TEXT[], $3::NUMERIC[], $4::NUMERIC[], $5::TIMESTAMPTZ[], $6::TIMESTAMPTZ[])
				AS u(id, st, ex, vo, exat, voat)
			WHERE g.id = u.id`, ids, statuses, expired, voided, expAt, voidAt); err != nil {
			return fmt.Errorf("update grants: %w", err)
		}
	}
	return nil
}

// markDirty records a grant change, undone with the op if it fails.
func (s *stage) markDirty(b ledger.Batch, g *grantState) {
	saved := g.Grant
	_, was := s.grants.dirty[g]
	s.grants.dirty[g] = struct{}{}
	b.OnUndo(func() {
		g.Grant = saved
		if !was {
			delete(s.grants.dirty, g)
		}
	})
}
