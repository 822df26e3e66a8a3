package wallet

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	"github.com/creditledger/creditledger/ledger"
)

// share is the part of an amount one account takes: a grant's credits, or
// the overage receivable.
type share struct {
	account ledger.AccountID
	amount  ledger.Amount
}

// split is how an amount burns a wallet down: the shares, in burn-down
// order, and how much credits covered and how much goes to overage.
type split struct {
	shares           []share
	covered, overage ledger.Amount
}

// transfers are the split's shares moved to account to (revenue).
func (sp split) transfers(to ledger.AccountID) []ledger.Posting {
	ps := make([]ledger.Posting, 0, 2*len(sp.shares))
	for _, sh := range sp.shares {
		ps = append(ps, ledger.Postings(ledger.Transfer{Debit: sh.account, Credit: to, Amount: sh.amount})...)
	}
	return ps
}

// burnDown splits amount over the wallet's usable grants in burn-down
// order, then over the overage receivable if the policy and its limit
// allow; otherwise it refuses the whole amount (a *ledger.Rejection:
// insufficient_credits). With
// force, whatever credits do not cover goes to overage whatever the policy
// and limit say: usage that already happened. It changes nothing.
func burnDown(b ledger.Batch, w *walletState, amount ledger.Amount, force bool) (split, error) {
	now := b.Now()
	usable := make([]*grantState, 0, len(w.grants))
	for _, g := range w.grants {
		if g.usable(now) {
			usable = append(usable, g)
		}
	}
	burnOrder(usable)
	var sp split
	left := amount
	var available ledger.Amount
	for _, g := range usable {
		acc, ok := b.Account(g.account)
		if !ok {
			continue
		}
		avail := acc.Available()
		available = available.Add(avail)
		if !left.IsPositive() || !avail.IsPositive() {
			continue
		}
		take := avail.Min(left)
		sp.shares = append(sp.shares, share{g.account, take})
		sp.covered, left = sp.covered.Add(take), left.Sub(take)
	}
	if !left.IsPositive() {
		return sp, nil
	}
	if !force && w.OveragePolicy != PolicyAllow {
		return split{}, ledger.Reject(CodeInsufficientCredits, "%s %s needed, %s available", amount, w.Asset, available)
	}
	if !force && w.OverageLimit != nil {
		acc, ok := b.Account(w.overage)
		if !ok {
			return split{}, fmt.Errorf("overage account of wallet %s not locked", w.ID)
		}
		used := acc.Posted(ledger.Debit).Add(acc.DebitsPending)
		if used.Add(left).Cmp(*w.OverageLimit) > 0 {
			return split{}, ledger.Reject(CodeInsufficientCredits,
				"%s %s needed, %s available and %s of the overage limit %s left",
				amount, w.Asset, available, w.OverageLimit.Sub(used).Max(ledger.Zero), w.OverageLimit)
		}
	}
	sp.shares = append(sp.shares, share{w.overage, left})
	sp.overage = left
	return sp, nil
}

// available is what debits of w may still use now.
func available(b ledger.Batch, w *walletState) ledger.Amount {
	now := b.Now()
	var sum ledger.Amount
	for _, g := range w.grants {
		if !g.usable(now) {
			continue
		}
		if acc, ok := b.Account(g.account); ok {
			sum = sum.Add(acc.Available())
		}
	}
	return sum
}

// usable reports whether debits and holds may draw on g at now.
func (g *grantState) usable(now time.Time) bool {
	return g.Status == GrantActive && !g.EffectiveAt.After(now) && (g.ExpiresAt == nil || g.ExpiresAt.After(now))
}

// burnOrder sorts grants the way they are consumed: lowest priority first,
// then soonest expiry (never-expiring last), then oldest, then by id so the
// order is total.
func burnOrder(gs []*grantState) {
	sort.SliceStable(gs, func(i, j int) bool {
		a, b := gs[i], gs[j]
		if a.Priority != b.Priority {
			return a.Priority < b.Priority
		}
		switch {
		case a.ExpiresAt == nil && b.ExpiresAt != nil:
			return false
		case a.ExpiresAt != nil && b.ExpiresAt == nil:
			return true
		case a.ExpiresAt != nil && !a.ExpiresAt.Equal(*b.ExpiresAt):
			return a.ExpiresAt.Before(*b.ExpiresAt)
		}
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return bytes.Compare(a.ID[:], b.ID[:]) < 0
	})
}
