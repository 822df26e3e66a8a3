package metering

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
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
	// ArchivedAt is when the meter stopped counting new events; nil while
	// it counts. Its usage so far stays readable.
	ArchivedAt *time.Time `json:"archived_at"`
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

// CreateMeter stores a meter; ErrExists if its code is taken.
func (s *Service) CreateMeter(ctx context.Context, m Meter) (Meter, error) {
	if err := m.Validate(); err != nil {
		return Meter{}, err
	}
	m.ID, m.CreatedAt = uuid.New(), s.l.Now()
	var filters, groupBy *string
	if len(m.Filters) > 0 {
		b, err := json.Marshal(m.Filters)
		if err != nil {
			return Meter{}, fmt.Errorf("meter filters: %w", err)
		}
		f := string(b)
		filters = &f
	}
	if len(m.GroupBy) > 0 {
		b, err := json.Marshal(m.GroupBy)
		if err != nil {
			return Meter{}, fmt.Errorf("meter group_by: %w", err)
		}
		g := string(b)
		groupBy = &g
	}
	var prop *string
	if m.Property != "" {
		prop = &m.Property
	}
	_, err := s.db.Pool.Exec(ctx, `INSERT INTO meters (id, code, event_name, aggregation, property, filters, group_by, created_at)
		VALUES ($1, $2, $3, $4, $5, $6::JSONB, $7::JSONB, $8)`, m.ID, m.Code, m.EventName, string(m.Aggregation), prop, filters, groupBy, m.CreatedAt)
	if pg.IsUnique(err, "") {
		return Meter{}, fault.Existsf("a meter with code %q exists already", m.Code)
	}
	if err != nil {
		return Meter{}, fmt.Errorf("create meter: %w", err)
	}
	return m, nil
}

// Meters lists every meter.
func (s *Service) Meters(ctx context.Context) ([]Meter, error) {
	ms, err := queryMeters(ctx, s.db.Pool, "")
	if err != nil {
		return nil, err
	}
	out := make([]Meter, len(ms))
	for i, m := range ms {
		out[i] = *m
	}
	return out, nil
}

func (s *Service) meterByCode(ctx context.Context, code string) (*Meter, error) {
	if !codePattern.MatchString(code) {
		// No meter has such a code, and PostgreSQL would refuse to look
		// for one holding a NUL.
		return nil, fault.NotFoundf("no meter %q", code)
	}
	ms, err := queryMeters(ctx, s.db.Pool, `WHERE code = $1`, code)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, fault.NotFoundf("no meter %q", code)
	}
	return ms[0], nil
}

// Meter reads one meter by its code, archived or not.
func (s *Service) Meter(ctx context.Context, code string) (Meter, error) {
	m, err := s.meterByCode(ctx, code)
	if err != nil {
		return Meter{}, err
	}
	return *m, nil
}

// ArchiveMeter stops a meter counting: the metering stage loads only
// meters that are not archived, so from the batch after the archive's
// commit on, an event it alone would have matched is rejected as no_meter
// (a batch that loaded the meter before still counts with it). Its
// aggregates, records and prices stay, so usage queries and invoices of
// what it counted are unchanged. Archiving it again answers it as it is:
// archived_at is the first archive's.
func (s *Service) ArchiveMeter(ctx context.Context, code string) (Meter, error) {
	if !codePattern.MatchString(code) {
		return Meter{}, fault.NotFoundf("no meter %q", code)
	}
	if _, err := s.db.Pool.Exec(ctx, `UPDATE meters SET archived_at = $2 WHERE code = $1 AND archived_at IS NULL`,
		code, s.l.Now().Truncate(time.Microsecond)); err != nil {
		return Meter{}, fmt.Errorf("archive meter: %w", err)
	}
	return s.Meter(ctx, code)
}
