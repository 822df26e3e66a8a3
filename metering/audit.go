package metering

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/cursor"
	"github.com/creditledger/creditledger/internal/text"
	"github.com/creditledger/creditledger/ledger"
)

// StoredEvent is an applied event as kept for audit, with what it charged.
type StoredEvent struct {
	EventID    string          `json:"event_id"`
	CustomerID string          `json:"customer_id"`
	EventName  string          `json:"event_name"`
	Timestamp  time.Time       `json:"timestamp"`
	Properties json.RawMessage `json:"properties"`
	ReceivedAt time.Time       `json:"received_at"`
	Source     string          `json:"source"`
	// Misses are the meters the event matched but could not count.
	Misses  json.RawMessage `json:"misses"`
	Charges []EventCharge   `json:"charges"`
}

// EventCharge is what an event did to one meter in one asset: Quantity is
// how far it moved the meter's running aggregate (what was priced), Amount
// what it cost, Covered the part the credits paid and Overage the rest.
type EventCharge struct {
	Meter      string          `json:"meter"`
	Asset      string          `json:"asset"`
	Dimensions json.RawMessage `json:"dimensions"`
	Quantity   decimal.Decimal `json:"quantity"`
	Amount     ledger.Amount   `json:"amount"`
	Covered    ledger.Amount   `json:"covered"`
	Overage    ledger.Amount   `json:"overage"`
}

// EventFilter selects stored events; the zero value selects all.
type EventFilter struct {
	Customer  string
	EventName string
	From, To  time.Time // on the event's timestamp: [From, To); zero: open
}

// Events lists applied events newest first (by timestamp, then id), after
// the cursor. The order is that of events_customer_ts_idx and
// events_ts_idx, so a page reads limit+1 index entries, with or without a
// customer.
func (s *Service) Events(ctx context.Context, f EventFilter, after string, limit int) ([]StoredEvent, string, error) {
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	for name, v := range map[string]string{"customer_id": f.Customer, "event_name": f.EventName} {
		if text.Check(name, v, 128) != nil {
			return []StoredEvent{}, "", nil // no event is stored under such a value
		}
	}
	where, args := `WHERE TRUE`, []any{}
	add := func(cond string, v any) {
		args = append(args, v)
		where += fmt.Sprintf(" AND "+cond, len(args))
	}
	if f.Customer != "" {
		add(`customer_id = $%d`, f.Customer)
	}
	if f.EventName != "" {
		add(`event_name = $%d`, f.EventName)
	}
	if !f.From.IsZero() {
		add(`ts >= $%d`, f.From)
	}
	if !f.To.IsZero() {
		add(`ts < $%d`, f.To)
	}
	if after != "" {
		k, err := cursor.ParseKey(after)
		if err != nil {
			return nil, "", fault.Invalidf("cursor", "is not a cursor this list returned")
		}
		args = append(args, k.At, k.ID)
		where += fmt.Sprintf(` AND (ts, event_id) < ($%d, $%d)`, len(args)-1, len(args))
	}
	args = append(args, limit+1)
	evs, err := s.queryEvents(ctx, where+` ORDER BY ts DESC, event_id DESC LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(evs) > limit {
		evs = evs[:limit]
		last := evs[limit-1]
		next = cursor.Key{At: last.Timestamp, ID: last.EventID}.String()
	}
	return evs, next, nil
}

// Event reads one applied event. customer, if set, is the only customer
// whose event may be read (a portal token): another's is not found.
func (s *Service) Event(ctx context.Context, id, customer string) (StoredEvent, error) {
	if text.Check("event_id", id, 128) != nil {
		return StoredEvent{}, fault.NotFoundf("no event %q", id)
	}
	evs, err := s.queryEvents(ctx, `WHERE event_id = $1`, id)
	if err != nil {
		return StoredEvent{}, err
	}
	if len(evs) == 0 || (customer != "" && evs[0].CustomerID != customer) {
		return StoredEvent{}, fault.NotFoundf("no event %q", id)
	}
	return evs[0], nil
}

// queryEvents reads events and their charges: one query for the events,
// one for the records of all of them (by their primary key's first column).
func (s *Service) queryEvents(ctx context.Context, where string, args ...any) ([]StoredEvent, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT event_id, customer_id, event_name, ts, properties, received_at, source, misses
		FROM events `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	out := []StoredEvent{}
	for rows.Next() {
		var e StoredEvent
		var props, misses []byte
		if err := rows.Scan(&e.EventID, &e.CustomerID, &e.EventName, &e.Timestamp, &props, &e.ReceivedAt, &e.Source, &misses); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan event: %w", err)
		}
		e.Timestamp, e.ReceivedAt = e.Timestamp.UTC(), e.ReceivedAt.UTC()
		e.Properties, e.Misses = jsonOr(props, `{}`), jsonOr(misses, `[]`)
		e.Charges = []EventCharge{}
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	if len(out) == 0 {
		return out, nil
	}
	ids := make([]string, len(out))
	at := make(map[string]int, len(out))
	for i, e := range out {
		ids[i], at[e.EventID] = e.EventID, i
	}
	rows, err = s.db.Pool.Query(ctx, `SELECT r.event_id, m.code, r.asset, r.dims, r.quantity_after - r.quantity_before,
			r.amount, COALESCE(r.overage, 0)
		FROM usage_lines r JOIN meters m ON m.id = r.meter_id
		WHERE r.event_id = ANY($1::TEXT[])
		ORDER BY r.event_id, m.code, r.asset`, ids)
	if err != nil {
		return nil, fmt.Errorf("event charges: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id   string
			c    EventCharge
			dims []byte
		)
		if err := rows.Scan(&id, &c.Meter, &c.Asset, &dims, &c.Quantity, &c.Amount, &c.Overage); err != nil {
			return nil, fmt.Errorf("scan event charge: %w", err)
		}
		c.Dimensions = jsonOr(dims, `{}`)
		c.Covered = c.Amount.Sub(c.Overage)
		e := &out[at[id]]
		e.Charges = append(e.Charges, c)
	}
	return out, rows.Err()
}

// jsonOr is raw JSON, or def when the column was NULL.
func jsonOr(raw []byte, def string) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage(def)
	}
	return json.RawMessage(raw)
}
