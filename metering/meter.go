package metering

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/text"
	"github.com/creditledger/creditledger/ledger"
)

// Aggregation is how a meter turns events into a quantity.
type Aggregation string

const (
	Count       Aggregation = "count"        // number of events
	Sum         Aggregation = "sum"          // sum of the property
	Max         Aggregation = "max"          // largest value of the property
	UniqueCount Aggregation = "unique_count" // distinct values of the property
	Latest      Aggregation = "latest"       // the property of the event with the latest timestamp
)

// MeterID identifies a meter.
type MeterID = uuid.UUID

// Meter selects events by name and filters and aggregates one property.
type Meter struct {
	ID          MeterID             `json:"id"`
	Code        string              `json:"code"`
	EventName   string              `json:"event_name"`
	Aggregation Aggregation         `json:"aggregation"`
	Property    string              `json:"property,omitempty"`
	Filters     map[string][]string `json:"filters,omitempty"` // property → accepted values
	GroupBy     []string            `json:"group_by,omitempty"`
	CreatedAt   time.Time           `json:"created_at"`
}

var (
	codePattern     = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,63}$`)
	propertyPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`)
)

// Validate checks a meter to be created.
func (m Meter) Validate() error {
	if !codePattern.MatchString(m.Code) {
		return fault.Invalidf("code", "1 to 64 characters: lower-case letters, digits and _ . -, starting with a letter")
	}
	if !namePattern.MatchString(m.EventName) {
		return fault.Invalidf("event_name", "1 to 64 characters, starting with a letter: letters, digits and _ . : -")
	}
	switch m.Aggregation {
	case Count:
		if m.Property != "" {
			return fault.Invalidf("property", "count takes no property")
		}
	case Sum, Max, UniqueCount, Latest:
		if !propertyPattern.MatchString(m.Property) {
			return fault.Invalidf("property", "%s needs the name of the property it aggregates", m.Aggregation)
		}
	default:
		return fault.Invalidf("aggregation", "must be count, sum, max, unique_count or latest")
	}
	if len(m.Filters) > 16 {
		return fault.Invalidf("filters", "at most 16 properties")
	}
	for p, vals := range m.Filters {
		if !propertyPattern.MatchString(p) {
			return fault.Invalidf("filters", "%q is not a property name", p)
		}
		if len(vals) == 0 || len(vals) > 100 {
			return fault.Invalidf("filters", "%q needs 1 to 100 accepted values", p)
		}
		for _, v := range vals {
			// Compared with property values, which are at most 256 bytes
			// (see value), and stored in JSONB, which refuses a NUL.
			var te *text.Error
			if errors.As(text.Check("filters."+p, v, 256), &te) {
				return fault.Invalidf(te.Field, "%s", te.Detail)
			}
		}
	}
	if len(m.GroupBy) > 8 {
		return fault.Invalidf("group_by", "at most 8 properties")
	}
	seen := map[string]bool{}
	for _, g := range m.GroupBy {
		if !propertyPattern.MatchString(g) || seen[g] {
			return fault.Invalidf("group_by", "%q is not a property name, or appears twice", g)
		}
		seen[g] = true
	}
	return nil
}

// matches reports whether the meter counts the event.
func (m *Meter) matches(name string, p properties) bool {
	if name != m.EventName {
		return false
	}
	for prop, accepted := range m.Filters {
		v, ok := p.str(prop)
		if !ok {
			return false
		}
		found := false
		for _, a := range accepted {
			if a == v {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// dimensions are the event's group-by values (absent properties are "").
func (m *Meter) dimensions(p properties) map[string]string {
	dims := make(map[string]string, len(m.GroupBy))
	for _, g := range m.GroupBy {
		v, _ := p.str(g)
		dims[g] = v
	}
	return dims
}

// dimsKey is the canonical text of a dimension set: sorted keys, JSON.
func dimsKey(dims map[string]string) string {
	if len(dims) == 0 {
		return "{}"
	}
	keys := make([]string, 0, len(dims))
	for k := range dims {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b := []byte{'{'}
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		kb, _ := json.Marshal(k)
		vb, _ := json.Marshal(dims[k])
		b = append(append(append(b, kb...), ':'), vb...)
	}
	return string(append(b, '}'))
}

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
