package metering

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/pricing"
)

// Which price charges an event: the customer's subscription's override for
// the meter, asset and dimensions, else the price of the plan version in
// force at the event's timestamp, else the default book's price in force
// then — and if the subscription prices the meter at all, the default book
// is not consulted for it (a meter is never charged twice, once by the
// plan and once by the book). Every price is the one in force at the
// event's timestamp: a later price or version never re-rates it.

// Books tells the metering stage, once per batch, which price books beyond
// the default one apply to the batch's customers. The billing package
// implements it over subscriptions and plans; metering defines it, so it
// needs nothing of billing.
type Books interface {
	// Books reads, in tx, the books of those customers that have or had
	// a subscription; the others are absent from the answer.
	Books(ctx context.Context, tx pgx.Tx, customers []string) (map[string]Book, error)
}

// Book is one subscribed customer's prices over time.
type Book interface {
	// Scopes are every price scope At may answer, for loading them.
	Scopes() []string
	// At answers for an event stamped t: the price scopes to consult, in
	// order (the subscription's overrides, then the plan version in force
	// at t), and the start of the subscription's billing period holding
	// t. ok is false when no subscription covered t: the default book
	// prices the event, on the wallet's own cycle.
	At(t time.Time) (scopes []string, period time.Time, ok bool)
}

// SetBooks makes the service price subscribed customers by b. Call it
// before the service is used; without it every customer is priced by the
// default book.
func (s *Service) SetBooks(b Books) { s.books = b }

// priceRow is a price as the stage resolves it.
type priceRow struct {
	asset     string
	dims      string
	effective time.Time
	archived  *time.Time
	price     pricing.Price
}

// inForceAt reports whether the row is in force at t within its series,
// given the effective time of the next row of the series (zero if none).
func (r priceRow) inForceAt(t, next time.Time) bool {
	if r.effective.After(t) || (!next.IsZero() && !next.After(t)) {
		return false
	}
	return r.archived == nil || r.archived.After(t)
}

// bookPrices are one meter's prices in one scope, by series (asset and
// dimensions), each series ordered by effective time.
type bookPrices map[[2]string][]priceRow

// add appends r to its series; rows arrive in effective order.
func (bp bookPrices) add(r priceRow) {
	k := [2]string{r.asset, r.dims}
	bp[k] = append(bp[k], r)
}

// at calls f with each price of the book in force at t. It reports whether
// any was.
func (bp bookPrices) at(t time.Time, f func(asset string, p *pricing.Price)) bool {
	any := false
	for k, rows := range bp {
		for i := range rows {
			var next time.Time
			if i+1 < len(rows) {
				next = rows[i+1].effective
			}
			if rows[i].inForceAt(t, next) {
				f(k[0], &rows[i].price)
				any = true
				break
			}
		}
	}
	return any
}
