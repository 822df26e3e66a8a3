package metering

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

const meterSelect = `SELECT id, code, event_name, aggregation, property, filters, group_by, created_at FROM meters `

func queryMeters(ctx context.Context, q querier, where string, args ...any) ([]*Meter, error) {
	rows, err := q.Query(ctx, meterSelect+where+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read meters: %w", err)
	}
	defer rows.Close()
	var out []*Meter
	for rows.Next() {
		var (
			m                Meter
			agg              string
			prop             *string
			filters, groupBy []byte
		)
		if err := rows.Scan(&m.ID, &m.Code, &m.EventName, &agg, &prop, &filters, &groupBy, &m.CreatedAt); err != nil {
			return nil, fmt.Errorf("scan meter: %w", err)
		}
		m.Aggregation, m.CreatedAt = Aggregation(agg), m.CreatedAt.UTC()
		if prop != nil {
			m.Property = *prop
		}
		if err := decodeJSON(filters, &m.Filters); err != nil {
			return nil, err
		}
		if err := decodeJSON(groupBy, &m.GroupBy); err != nil {
			return nil, err
		}
		out = append(out, &m)
	}
	return out, rows.Err()
}

// CreateMeter stores a meter; ErrExists if its code is taken.
func (s *Service) CreateMeter(ctx context.Context, m Meter) (Meter, error) {
	if err := m.Validate(); err != nil {
		return Meter{}, err
	}
	m.ID, m.CreatedAt = uuid.New(), s.l.Now()
	var filters, groupBy *string
	if len(m.Filters) > 0 {
		b, _ := json.Marshal(m.Filters)
		f := string(b)
		filters = &f
	}
	if len(m.GroupBy) > 0 {
		b, _ := json.Marshal(m.GroupBy)
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
