package ledger

import "fmt"

// Postings on the batch's in-memory counters: Post's all-or-nothing rule,
// the overdraft and limit checks, and the undo of part of an op. What an
// op does to the batch as a whole (begin, finish, abort) is batch.go's.

// save keeps a's state as it was before the current op first touched it.
func (b *batch) save(a *acct) {
	if _, ok := b.cur.saved[a]; !ok {
		var other map[int]Balance
		if a.other != nil {
			other = make(map[int]Balance, len(a.other))
			for k, v := range a.other {
				other[k] = v
			}
		}
		b.cur.saved[a] = acctSave{bal: a.Balance, other: other, touched: a.touched}
	}
}

// move applies one posting's effect to the in-memory counters of one row.
func (b *batch) move(a *acct, row int, side Side, pending bool, amt Amount) {
	b.save(a)
	a.touched = true
	bal := &a.Balance
	var o Balance
	if row != a.row {
		if a.other == nil {
			a.other = map[int]Balance{}
		}
		o = a.other[row]
		bal = &o
	}
	switch {
	case side == Debit && !pending:
		bal.DebitsPosted = bal.DebitsPosted.Add(amt)
	case side == Credit && !pending:
		bal.CreditsPosted = bal.CreditsPosted.Add(amt)
	case side == Debit && pending:
		bal.DebitsPending = bal.DebitsPending.Add(amt)
	default:
		bal.CreditsPending = bal.CreditsPending.Add(amt)
	}
	if row != a.row {
		a.other[row] = o
	}
}

// stage adds a posting on the batch's own row of the account.
func (b *batch) stage(a *acct, side Side, pending bool, amt Amount, hold *HoldID) {
	b.stageRow(a, a.row, side, pending, amt, hold)
}

func (b *batch) stageRow(a *acct, row int, side Side, pending bool, amt Amount, hold *HoldID) {
	b.move(a, row, side, pending, amt)
	b.postings = append(b.postings, postingRow{
		entry: b.cur.entry.id, seq: len(b.postings) - b.cur.nPostings, account: a.ID, shard: row,
		asset: a.Asset, side: side, pending: pending, amount: amt, hold: hold,
	})
}

// checkAccounts refuses a state in which a no-overdraft account went below
// zero, or a counter reached its limit (see amount.go). It is checked after
// all postings of a call, so a transfer out of and back into one account in
// the same call is judged by its net effect.
func (b *batch) checkAccounts(touched []*acct) *Rejection {
	lim := b.ledger.limits
	for _, a := range touched {
		if a.hot {
			if c := overLimit(a.Balance, lim.HotBatchDelta); c != "" {
				return Reject(CodeLimitExceeded, "this batch's change of %s (%s) would reach the ledger's limit of %s per batch; send it again",
					a.Code, a.Asset, lim.HotBatchDelta)
			}
			for _, o := range a.other {
				if c := overLimit(o, lim.HotBatchDelta); c != "" {
					return Reject(CodeLimitExceeded, "this batch's change of %s (%s) would reach the ledger's limit of %s per batch; send it again",
						a.Code, a.Asset, lim.HotBatchDelta)
				}
			}
			continue
		}
		if c := overLimit(a.Balance, lim.Counter); c != "" {
			return Reject(CodeLimitExceeded, "account %s (%s) would reach the ledger's limit of %s on %s",
				a.Code, a.Asset, lim.Counter, c)
		}
		if !a.NoOverdraft {
			continue
		}
		if a.Balance.Available(a.Normal).IsNegative() {
			return Reject(CodeOverdraft, "account %s (%s) would be overdrawn by %s",
				a.Code, a.Asset, a.Balance.Available(a.Normal).Neg())
		}
		if a.Normal == Credit && a.CreditsPending.IsNegative() || a.Normal == Debit && a.DebitsPending.IsNegative() {
			return Reject(CodeOverdraft, "account %s: pending below zero", a.Code)
		}
	}
	return nil
}

// Post writes balanced postings into the current op's entry. Either all of
// them apply or none: an unbalanced set is an error, an overdraft a
// *Rejection, and in both cases the batch is left as it was.
func (b *batch) Post(ps ...Posting) error {
	if len(ps) == 0 {
		return nil
	}
	sums := map[string]Amount{}
	accts := make([]*acct, len(ps))
	for i, p := range ps {
		if !p.Amount.IsPositive() {
			return fmt.Errorf("posting %d: amount %s must be positive", i, p.Amount)
		}
		if p.Side != Debit && p.Side != Credit {
			return fmt.Errorf("posting %d: no side", i)
		}
		a, err := b.lookup(p.Account)
		if err != nil {
			return err
		}
		accts[i] = a
		if p.Side == Debit {
			sums[a.Asset] = sums[a.Asset].Add(p.Amount)
		} else {
			sums[a.Asset] = sums[a.Asset].Sub(p.Amount)
		}
	}
	for asset, s := range sums {
		if !s.IsZero() {
			return fmt.Errorf("%w: %s off by %s", ErrUnbalanced, asset, s)
		}
	}
	mark := b.mark()
	for i, p := range ps {
		b.stage(accts[i], p.Side, false, p.Amount, nil)
	}
	if rej := b.checkAccounts(accts); rej != nil {
		b.rollbackTo(mark)
		return rej
	}
	return nil
}

// mark and rollbackTo undo part of an op (a Post that overdrew) without
// undoing what the op did before it.
type mark struct{ postings int }

func (b *batch) mark() mark { return mark{postings: len(b.postings)} }

func (b *batch) rollbackTo(m mark) {
	// Reverse the postings staged since the mark.
	for i := len(b.postings) - 1; i >= m.postings; i-- {
		p := b.postings[i]
		a := b.accounts[p.account]
		b.move(a, p.shard, p.side, p.pending, p.amount.Neg())
	}
	b.postings = b.postings[:m.postings]
}
