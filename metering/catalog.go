package metering

// Reading the catalog — meters and prices — for the stage and the
// service, and the cache of parsed price specs.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/creditledger/creditledger/pricing"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// decodeJSON is a small helper for JSON columns.
func decodeJSON(raw []byte, v any) error {
	if len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, v)
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

const meterSelect = `SELECT id, code, event_name, aggregation, property, filters, group_by, created_at, archived_at FROM meters `

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
		if err := rows.Scan(&m.ID, &m.Code, &m.EventName, &agg, &prop, &filters, &groupBy, &m.CreatedAt, &m.ArchivedAt); err != nil {
			return nil, fmt.Errorf("scan meter: %w", err)
		}
		m.Aggregation, m.CreatedAt = Aggregation(agg), m.CreatedAt.UTC()
		if m.ArchivedAt != nil {
			*m.ArchivedAt = m.ArchivedAt.UTC()
		}
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

// specs caches price specs as parsed, by price id: a price row never
// changes (a new price is a new row), so a process parses each once rather
// than in every batch. The raw spec is kept and compared, so a row that did
// change would be parsed again, never served stale.
type specs struct {
	mu sync.Mutex
	m  map[uuid.UUID]spec
}

type spec struct {
	raw   []byte
	price pricing.Price
}

const maxSpecs = 10_000 // prices in use; beyond it the cache starts over

func (c *specs) parse(id uuid.UUID, raw []byte) (pricing.Price, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.m[id]; ok && bytes.Equal(s.raw, raw) {
		return s.price, nil
	}
	var p pricing.Price
	if err := json.Unmarshal(raw, &p); err != nil {
		return pricing.Price{}, fmt.Errorf("price %s spec: %w", id, err)
	}
	if c.m == nil || len(c.m) >= maxSpecs {
		c.m = map[uuid.UUID]spec{}
	}
	c.m[id] = spec{raw: bytes.Clone(raw), price: p}
	return p, nil
}

func queryPrices(ctx context.Context, q querier, c *specs, where string, args ...any) ([]Price, error) {
	rows, err := q.Query(ctx, `SELECT p.id, p.meter_id, m.code, p.asset, p.spec, p.scope, p.effective_at, p.archived_at, p.created_at
		FROM prices p JOIN meters m ON m.id = p.meter_id `+where+` ORDER BY p.effective_at, p.created_at, p.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read prices: %w", err)
	}
	defer rows.Close()
	var out []Price
	for rows.Next() {
		var (
			p   Price
			raw []byte
			err error
		)
		if err := rows.Scan(&p.ID, &p.MeterID, &p.MeterCode, &p.Asset, &raw, &p.Scope, &p.EffectiveAt, &p.ArchivedAt, &p.CreatedAt); err != nil {
			return nil, fmt.Errorf("scan price: %w", err)
		}
		if p.Price, err = c.parse(p.ID, raw); err != nil {
			return nil, err
		}
		p.CreatedAt, p.EffectiveAt = p.CreatedAt.UTC(), p.EffectiveAt.UTC()
		if p.ArchivedAt != nil {
			t := p.ArchivedAt.UTC()
			p.ArchivedAt = &t
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// lockAggregatesSQL loads and locks a batch's usage aggregates.
