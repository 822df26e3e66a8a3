// Package pricing turns metered usage into money: price models (per unit,
// graduated, volume, package, each with an optional free allowance) and the
// marginal-price rule that debits usage in real time.
//
// # The marginal-price rule
//
// A price is a function Amount(q) from the cumulative quantity q used in a
// billing period to the total charge for that period. The ledger cannot wait
// for the period to end, so each usage event is debited as it arrives: when
// an event moves the running quantity from q0 to q1, the debit is
//
//	Marginal(q0, q1) = Amount(q1) − Amount(q0)
//
// One rule covers every model. A per-unit price gives qty × unit_price; a
// graduated price charges each event at the rate of the tier it falls in and
// splits an event that straddles a boundary; free units cost nothing until
// they are used up; a package is charged whole when its first unit is used;
// and a volume price, which reprices the whole quantity when the total
// crosses into a cheaper tier, yields a negative marginal: a credit back.
//
// For example, with tokens priced 3.00 per million for the first million and
// 2.50 per million above, an event of 400,000 tokens arriving when 800,000
// have been used moves q from 800,000 to 1,200,000 and costs
//
//	Amount(1,200,000) − Amount(800,000) = 3.50 − 2.40 = 1.10
//
// that is 200,000 tokens at the first rate and 200,000 at the second.
//
// # Exactness
//
// Everything is computed with exact decimals, never floats. Amount rounds its
// result once, to Scale fractional digits (the ledger's scale), half up.
// Because each debit is a difference of two such rounded totals, the debits
// telescope: however the period's usage is split into events, their debits
// add up to exactly Amount(total), with no drift from rounding each event on
// its own. One million events of 0.000003 each debit exactly 3.
//
// # Selecting a price
//
// A meter may carry several prices told apart by dimensions, such as
// {"model": "gpt-4o", "token_type": "input"}. Select picks, for an event's
// dimension values, the most specific price that matches; Conflicts refuses a
// second price with the same dimension set.
package pricing
