package wallet

import (
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
func (s *stage) keepBalances(b ledger.Batch) {
	s.keep, s.drop = nil, nil
	var changed []*walletState
	for w, before := range s.touched {
		if !before.same(snapOf(b, w)) {
			changed = append(changed, w)
		}
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
	// The grant sums came with the wallets (Load asks for them whenever
	// the cache is on), with what the batch granted, expired and voided.
	for _, w := range changed {
		bal := s.balance(b, w)
		s.keep = append(s.keep, cachedBalance{bal: bal, until: grantBoundary(bal.AsOf, w.grants)})
	}
}

var _ ledger.Committer = (*stage)(nil)
