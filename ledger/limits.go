package ledger

import (
	"errors"
	"fmt"

	"github.com/shopspring/decimal"
)

// The ledger's limits, and why no sequence of accepted operations can
// overflow a counter.
//
// Every counter (debits_posted, credits_posted, debits_pending,
// credits_pending) is NUMERIC(38,12): it holds values below 10^26
// (Limits.Counter).
//
//   - A wallet's accounts (grants, overage, …) are locked and loaded by the
//     batch that changes them, so the batch knows each counter exactly and
//     refuses an operation that would take one to Limits.Counter
//     (CodeLimitExceeded). Only that operation is refused, and the account
//     is the wallet's own: nobody else's operations are touched.
//   - A hot account's rows (revenue:usage, funding:*, …) are shared by every
//     customer of a poster shard and never loaded. A batch refuses an
//     operation that would take the batch's own change of a hot row to
//     Limits.HotBatchDelta (10^22). After writing, the batch learns which of
//     its hot rows reached Limits.HotRowRoll (10^25), and the process writes
//     that row's successor (row + the account's shard count) from then on,
//     leaving the full row as it is (its postings still sum to it). A row
//     passes HotRowRoll only through batches that had not yet learnt it
//     crossed: at most one per process writing that row, since a shard
//     commits one batch at a time and every batch learns from its own
//     UPDATE. Reaching 10^26 would take (10^26 − 10^25) / 10^22 = 9,000
//     processes committing to the same row in the same instant.
//   - MaxOpAmount (10^15) bounds what one request may ask to move (a grant,
//     a debit, a hold, a top-up, one usage charge). It is checked at the
//     edge, where a 422 can name the field, so the limits inside the batch
//     are a second line that ordinary traffic never meets.
//   - A batch carries at most MaxBatchOps operations (Options.MaxBatch is
//     checked against it).

// MaxOpAmount is the most one request may move: 10^15 units of its asset
// (a quadrillion: 10^7 times the largest single payment card networks
// allow, in any currency's minor units). Amounts are exact up to Scale
// fractional digits below it.
var MaxOpAmount = Amount{d: decimal.New(1, 15)}

// MaxBatchOps bounds Options.MaxBatch.
const MaxBatchOps = 100_000

// ErrAmountTooLarge is returned by CheckOpAmount; the API maps it to a 422
// naming the field.
var ErrAmountTooLarge = fmt.Errorf("amount exceeds the ledger's limit of %s per operation", MaxOpAmount)

// CheckOpAmount refuses an amount larger than MaxOpAmount (in absolute
// value).
func CheckOpAmount(a Amount) error {
	if a.d.Abs().Cmp(MaxOpAmount.d) > 0 {
		return ErrAmountTooLarge
	}
	return nil
}

// Limits are the batch's counter limits (see the top of this file). The
// zero value means the defaults; tests lower them to reach them cheaply.
type Limits struct {
	Counter       Amount // a counter stays below this: 10^26
	HotBatchDelta Amount // a batch's change of one hot row stays below this: 10^22
	HotRowRoll    Amount // a hot row at or past this is rolled over: 10^25
}

func (l Limits) withDefaults() Limits {
	if l.Counter.IsZero() {
		l.Counter = Amount{d: decimal.New(1, MaxIntegerDigits)}
	}
	if l.HotBatchDelta.IsZero() {
		l.HotBatchDelta = Amount{d: decimal.New(1, MaxIntegerDigits-4)}
	}
	if l.HotRowRoll.IsZero() {
		l.HotRowRoll = Amount{d: decimal.New(1, MaxIntegerDigits-1)}
	}
	return l
}

func (l Limits) validate() error {
	switch {
	case !l.Counter.IsPositive() || !l.HotBatchDelta.IsPositive() || !l.HotRowRoll.IsPositive():
		return errors.New("ledger limits must be positive")
	case l.HotRowRoll.Add(l.HotBatchDelta).Cmp(l.Counter) > 0:
		return errors.New("ledger limits: HotRowRoll + HotBatchDelta must stay below Counter")
	}
	return nil
}

// overLimit says which counter of bal is at or past limit, or "".
func overLimit(bal Balance, limit Amount) string {
	switch {
	case bal.DebitsPosted.Cmp(limit) >= 0:
		return "debits_posted"
	case bal.CreditsPosted.Cmp(limit) >= 0:
		return "credits_posted"
	case bal.DebitsPending.Cmp(limit) >= 0:
		return "debits_pending"
	case bal.CreditsPending.Cmp(limit) >= 0:
		return "credits_pending"
	}
	return ""
}
