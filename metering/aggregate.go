package metering

import (
	"fmt"
	"time"

	"github.com/creditledger/creditledger/ledger"
	"github.com/shopspring/decimal"
)

// MaxQuantity bounds what one event may count: 10^15 units (tokens,
// bytes, seconds). With MaxOpAmount it keeps a period's running totals far
// from what their columns hold (see maxRunningTotal).
var MaxQuantity = decimal.New(1, 15)

// maxRunningTotal bounds an aggregate's running charge (NUMERIC(38,12)
// holds values below 10^26): an event that would take it there is refused
// alone, and the customer's next period starts from zero.
var maxRunningTotal = decimal.New(1, ledger.MaxIntegerDigits)

// step is what one event does to an aggregate.
type step struct {
	value  decimal.Decimal // the property's value (1 for count)
	unique string          // unique_count: the value seen
}

// value extracts what the meter aggregates from the event.
func (m *Meter) value(p properties) (step, error) {
	switch m.Aggregation {
	case Count:
		return step{value: decimal.NewFromInt(1)}, nil
	case UniqueCount:
		v, ok := p.str(m.Property)
		if !ok {
			return step{}, fmt.Errorf("property %q is missing", m.Property)
		}
		if len(v) > 256 {
			return step{}, fmt.Errorf("property %q is longer than 256 characters", m.Property)
		}
		return step{value: decimal.NewFromInt(1), unique: v}, nil
	}
	d, err := p.number(m.Property)
	if err != nil {
		return step{}, err
	}
	if d.Abs().Cmp(MaxQuantity) > 0 {
		return step{}, fmt.Errorf("property %q is %s, beyond the %s one event may count", m.Property, d, MaxQuantity)
	}
	if m.Aggregation == Sum && d.IsNegative() {
		return step{}, fmt.Errorf("property %q is negative; a sum meter counts usage, which only grows", m.Property)
	}
	return step{value: d}, nil
}

// aggregate is the running quantity of one meter, customer, dimension set,
// asset and cycle.
type aggregate struct {
	quantity decimal.Decimal
	latestTS *time.Time
	amount   decimal.Decimal
	seen     map[string]bool // unique_count: values seen in this batch or loaded
	exists   bool
	dirty    bool
}

// apply moves the aggregate by one event and returns q0 and q1.
func (a *aggregate) apply(m *Meter, s step, ts time.Time) (q0, q1 decimal.Decimal) {
	q0 = a.quantity
	switch m.Aggregation {
	case Count, Sum:
		a.quantity = a.quantity.Add(s.value)
	case Max:
		if !a.exists && !a.dirty || s.value.GreaterThan(a.quantity) {
			a.quantity = s.value
		}
	case UniqueCount:
		if !a.seen[s.unique] {
			a.seen[s.unique] = true
			a.quantity = a.quantity.Add(decimal.NewFromInt(1))
		}
	case Latest:
		// Events arrive out of order; the latest by timestamp wins.
		if a.latestTS == nil || !ts.Before(*a.latestTS) {
			a.quantity = s.value
			t := ts
			a.latestTS = &t
		}
	}
	a.dirty = true
	return q0, a.quantity
}
