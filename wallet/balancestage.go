package wallet

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/ledger"
)

// The wallet stage's side of the balance cache (balancecache.go). Every op
// that changes a wallet's grants or overage reaches the wallet through
// walletFor (or touchWallet), which notes the wallet's accounts as they were
// before the batch changed them. At the end of Flush, the wallets whose
// accounts or grants differ from that note get their balance computed from
// the batch's state (the stage's balance, as a debit answers with); in
// Committed they go into the cache and their ids to the other processes.
// A wallet an op named but never reached is forgotten instead: the stage
// cannot tell whether it changed.

// walletSnap is what a wallet's balance depends on in a batch: its grants
// (which, their status, their counters) and its overage counters.
type walletSnap struct {
	grants  []grantSnap
	overage ledger.Balance
}

type grantSnap struct {
	g      *grantState
	status GrantStatus
	bal    ledger.Balance
}

func snapOf(b ledger.Batch, w *walletState) walletSnap {
	sn := walletSnap{grants: make([]grantSnap, len(w.grants))}
	for i, g := range w.grants {
		sn.grants[i] = grantSnap{g: g, status: g.Status}
		if acc, ok := b.Account(g.account); ok {
			sn.grants[i].bal = acc.Balance
		}
	}
	if acc, ok := b.Account(w.overage); ok {
		sn.overage = acc.Balance
	}
	return sn
}

func sameBalance(a, b ledger.Balance) bool {
	return a.DebitsPosted.Equal(b.DebitsPosted) && a.CreditsPosted.Equal(b.CreditsPosted) &&
		a.DebitsPending.Equal(b.DebitsPending) && a.CreditsPending.Equal(b.CreditsPending)
}

func (a walletSnap) same(b walletSnap) bool {
	if len(a.grants) != len(b.grants) || !sameBalance(a.overage, b.overage) {
		return false
	}
	for i := range a.grants {
		x, y := a.grants[i], b.grants[i]
		if x.g != y.g || x.status != y.status || !sameBalance(x.bal, y.bal) {
			return false
		}
	}
	return true
}

// touch notes w's state the first time an op of the batch reaches it.
func (s *stage) touch(b ledger.Batch, w *walletState) {
	if _, ok := s.touched[w]; ok {
		return
	}
	if s.touched == nil {
		s.touched = map[*walletState]walletSnap{}
	}
	s.touched[w] = snapOf(b, w)
}

// touchWallet is walletFor for an op that changes a wallet's accounts
// through the ledger's own op (a hold's void), before it does.
func touchWallet(b ledger.Batch, id WalletID) {
	if s, err := stageOf(b); err == nil && s.cache != nil {
		if w := s.wallets[id]; w != nil {
			s.touch(b, w)
		}
	}
}

// keepBalances computes, at the end of Flush, the balances of the wallets
// the batch changed, for Committed to put in the cache.
func (s *stage) keepBalances(ctx context.Context, b ledger.StageBatch) error {
	s.keep, s.drop = nil, nil
	var changed []*walletState
	var regranted []*walletState // changed with their grant sums
	for w, before := range s.touched {
		if before.same(snapOf(b, w)) {
			continue
		}
		// Without the sums loaded, a wallet's totals in the batch are what
		// its ops granted, expired and voided: zero unless its grants moved.
		if t := s.grants.totals[w.ID]; !s.sums && t != nil && !(t.granted.IsZero() && t.expired.IsZero() && t.voided.IsZero()) {
			regranted = append(regranted, w)
			continue
		}
		changed = append(changed, w)
	}
	seen := map[WalletID]struct{}{}
	for _, id := range s.named {
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		if w := s.wallets[id]; w == nil {
			s.drop = append(s.drop, id)
		} else if _, ok := s.touched[w]; !ok {
			s.drop = append(s.drop, id)
		}
	}
	if !s.sums {
		// The batch did not load the grant sums (no debit among its ops:
		// ingest). Usage moves balances, not grants, so a wallet the cache
		// holds keeps the sums it had; one it does not hold is forgotten
		// rather than read (a query per batch would cost ingest more than
		// a miss costs a read). A wallet whose grant sums the batch moved
		// has them read, after flushGrants, so they include what the batch
		// granted, expired and voided.
		kept := changed[:0]
		for _, w := range changed {
			if t, ok := s.cache.totalsOf(w.ID); ok {
				s.grants.totals[w.ID] = &t
				kept = append(kept, w)
			} else {
				s.drop = append(s.drop, w.ID)
			}
		}
		changed = kept
		if len(regranted) > 0 {
			if err := s.loadTotals(ctx, b, regranted); err != nil {
				return err
			}
			changed = append(changed, regranted...)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	for _, w := range changed {
		bal := s.balance(b, w)
		s.keep = append(s.keep, cachedBalance{bal: bal, until: grantBoundary(bal.AsOf, w.grants)})
	}
	return nil
}

var _ ledger.Committer = (*stage)(nil)

// loadTotals reads the grant sums of ws in the batch's transaction.
func (s *stage) loadTotals(ctx context.Context, b ledger.StageBatch, ws []*walletState) error {
	ids := make([]uuid.UUID, len(ws))
	for i, w := range ws {
		ids[i] = uuid.UUID(w.ID)
	}
	rows, err := b.Tx().Query(ctx, walletTotalsSQL, ids)
	if err != nil {
		return fmt.Errorf("grant sums: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id WalletID
			t  totals
		)
		if err := rows.Scan(&id, &t.granted, &t.expired, &t.voided); err != nil {
			return fmt.Errorf("grant sums: %w", err)
		}
		s.grants.totals[id] = &t
	}
	return rows.Err()
}

// walletTotalsSQL sums the grants of wallets, an index probe per wallet
// whatever the statistics (see loadWalletsSQL).
const walletTotalsSQL = `SELECT k.id, gs.granted, gs.expired, gs.voided
	FROM (SELECT DISTINCT id FROM unnest($1::UUID[]) AS u(id)) AS k
	CROSS JOIN LATERAL (SELECT COALESCE(SUM(g.amount), 0) AS granted, COALESCE(SUM(g.expired_amount), 0) AS expired,
		COALESCE(SUM(g.voided_amount), 0) AS voided FROM grants g WHERE g.wallet_id = k.id) gs`
