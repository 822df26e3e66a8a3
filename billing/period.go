package billing

import (
	"time"

	"github.com/creditledger/creditledger/wallet"
)

// Periods of a subscription run from an anchor every interval: the k-th is
// [anchor + k intervals, anchor + k+1 intervals). A monthly anchor on the
// 31st ends on the last day of shorter months rather than spilling into
// the next (Go's AddDate would turn 31 January + 1 month into 3 March),
// and every period is counted from the anchor, not from the last period,
// so 31 January → 28 February → 31 March.

// add returns anchor moved n intervals.
func (iv Interval) add(anchor time.Time, n int) time.Time {
	anchor = anchor.UTC()
	switch iv {
	case Week:
		return anchor.AddDate(0, 0, 7*n)
	case Year:
		return wallet.AddMonths(anchor, 12*n)
	}
	return wallet.AddMonths(anchor, n)
}

// period is the period anchored at anchor that holds t; t before anchor
// gets the first period.
func (iv Interval) period(anchor, t time.Time) (start, end time.Time) {
	anchor, t = anchor.UTC(), t.UTC()
	if t.Before(anchor) {
		return anchor, iv.add(anchor, 1)
	}
	var k int
	switch iv {
	case Week:
		k = int(t.Sub(anchor) / (7 * 24 * time.Hour))
	case Year:
		k = t.Year() - anchor.Year()
	default:
		k = (t.Year()-anchor.Year())*12 + int(t.Month()-anchor.Month())
	}
	// The estimate is at most one too many (a shorter month, a later day).
	for k > 0 && iv.add(anchor, k).After(t) {
		k--
	}
	for !iv.add(anchor, k+1).After(t) {
		k++
	}
	return iv.add(anchor, k), iv.add(anchor, k+1)
}
