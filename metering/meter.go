package metering

import (
	"encoding/json"
	"errors"
	"regexp"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/text"
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
