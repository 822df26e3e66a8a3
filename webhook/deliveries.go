package webhook

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/cursor"
)

// Delivery is one event for one endpoint, with its log of attempts.
type Delivery struct {
	ID         uuid.UUID `json:"id"`
	EndpointID uuid.UUID `json:"endpoint_id"`
	// EventID is the webhook-id header and the body's "id": the same on
	// every attempt and every resend, so receivers can deduplicate.
	EventID      uuid.UUID `json:"event_id"`
	EventType    string    `json:"event_type"`
	Status       string    `json:"status"` // pending, succeeded, failed
	AttemptCount int       `json:"attempt_count"`
	// NextAttemptAt is when a pending delivery is sent next; null once it
	// succeeded or failed.
	NextAttemptAt  *time.Time `json:"next_attempt_at"`
	LastAttemptAt  *time.Time `json:"last_attempt_at"`
	LastStatusCode *int       `json:"last_status_code"`
	LastError      *string    `json:"last_error"`
	CreatedAt      time.Time  `json:"created_at"`
	Attempts       []Attempt  `json:"attempts"` // oldest first
}

// Attempt is one HTTP request of a delivery.
type Attempt struct {
	At         time.Time `json:"at"`
	StatusCode *int      `json:"status_code"` // null: no response
	Error      *string   `json:"error"`       // null: a 2xx
	DurationMS int64     `json:"duration_ms"`
}

// DeliveryQuery selects a page of an endpoint's deliveries.
type DeliveryQuery struct {
	Status string // only deliveries in this status, if set
	Cursor string // from the previous page; "" for the first
	Limit  int    // 1 to 500, default 50
}

const deliveryColumns = `id, endpoint_id, event_id, event_type, status, attempts, next_attempt_at,
	last_attempt_at, last_status_code, last_error, created_at`

func scanDelivery(row pgx.CollectableRow) (Delivery, error) {
	var (
		d    Delivery
		code *int64
	)
	err := row.Scan(&d.ID, &d.EndpointID, &d.EventID, &d.EventType, &d.Status, &d.AttemptCount, &d.NextAttemptAt,
		&d.LastAttemptAt, &code, &d.LastError, &d.CreatedAt)
	if code != nil {
		c := int(*code)
		d.LastStatusCode = &c
	}
	d.CreatedAt = d.CreatedAt.UTC()
	d.NextAttemptAt, d.LastAttemptAt = utc(d.NextAttemptAt), utc(d.LastAttemptAt)
	d.Attempts = []Attempt{}
	return d, err
}

// Deliveries lists an endpoint's deliveries, newest first, each with its
// attempts. The returned cursor is "" on the last page. A deleted endpoint
// has none to show: fault.NotFound.
func (s *Service) Deliveries(ctx context.Context, endpointID uuid.UUID, q DeliveryQuery) ([]Delivery, string, error) {
	if _, err := s.Endpoint(ctx, endpointID); err != nil {
		return nil, "", err
	}
	limit := q.Limit
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	switch q.Status {
	case "", StatusPending, StatusSucceeded, StatusFailed:
	default:
		return nil, "", fault.Invalidf("status", "must be one of pending, succeeded, failed")
	}
	sql := `SELECT ` + deliveryColumns + ` FROM webhook_deliveries WHERE endpoint_id = $1 AND ($2 = '' OR status = $2)`
	args := []any{endpointID, q.Status, limit + 1}
	if q.Cursor != "" {
		c, err := parseCursor(q.Cursor)
		if err != nil {
			return nil, "", err
		}
		sql += ` AND (created_at, id) < ($4, $5)`
		args = append(args, c.At, c.ID)
	}
	rows, err := s.db.Pool.Query(ctx, sql+` ORDER BY created_at DESC, id DESC LIMIT $3`, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list webhook deliveries: %w", err)
	}
	ds, err := pgx.CollectRows(rows, scanDelivery)
	if err != nil {
		return nil, "", fmt.Errorf("list webhook deliveries: %w", err)
	}
	ds, next := cursor.Page(ds, limit, func(d Delivery) cursor.Cursor { return cursor.Cursor{At: d.CreatedAt, ID: d.ID} })
	if err := s.loadAttempts(ctx, ds); err != nil {
		return nil, "", err
	}
	return ds, cursor.Next(next), nil
}

// Delivery returns one delivery with its attempts.
func (s *Service) Delivery(ctx context.Context, id uuid.UUID) (Delivery, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE id = $1`, id)
	if err != nil {
		return Delivery{}, fmt.Errorf("read webhook delivery: %w", err)
	}
	d, err := pgx.CollectExactlyOneRow(rows, scanDelivery)
	if errors.Is(err, pgx.ErrNoRows) {
		return Delivery{}, fault.NotFoundf("webhook delivery %s", id)
	}
	if err != nil {
		return Delivery{}, fmt.Errorf("read webhook delivery: %w", err)
	}
	ds := []Delivery{d}
	if err := s.loadAttempts(ctx, ds); err != nil {
		return Delivery{}, err
	}
	return ds[0], nil
}

// loadAttempts fills in the attempts of ds with one query.
func (s *Service) loadAttempts(ctx context.Context, ds []Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, len(ds))
	at := make(map[uuid.UUID]int, len(ds))
	for i, d := range ds {
		ids[i], at[d.ID] = d.ID, i
	}
	rows, err := s.db.Pool.Query(ctx, `SELECT delivery_id, attempted_at, status_code, error, duration_ms
		FROM webhook_attempts WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempted_at, id`, ids)
	if err != nil {
		return fmt.Errorf("read webhook attempts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id   uuid.UUID
			a    Attempt
			code *int64
		)
		if err := rows.Scan(&id, &a.At, &code, &a.Error, &a.DurationMS); err != nil {
			return fmt.Errorf("read webhook attempts: %w", err)
		}
		if code != nil {
			c := int(*code)
			a.StatusCode = &c
		}
		a.At = a.At.UTC()
		i := at[id]
		ds[i].Attempts = append(ds[i].Attempts, a)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read webhook attempts: %w", err)
	}
	return nil
}

// Resend makes a delivery pending again and due now, whatever its status,
// with a fresh retry schedule. It is sent with the same webhook-id; earlier
// attempts stay in its log. A delivery whose endpoint is disabled or
// deleted is refused: a fault.Conflict with code CodeEndpointInactive.
func (s *Service) Resend(ctx context.Context, id uuid.UUID) (Delivery, error) {
	// Bumping claim fences off a dispatcher sending it right now: that
	// attempt's outcome no longer decides the status.
	tag, err := s.db.Pool.Exec(ctx, `UPDATE webhook_deliveries
		SET status = 'pending', next_attempt_at = $2, failures = 0, claim = claim + 1
		WHERE id = $1 AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE deleted_at IS NULL AND disabled_at IS NULL)`,
		id, s.now())
	if err != nil {
		return Delivery{}, fmt.Errorf("resend webhook delivery: %w", err)
	}
	d, err := s.Delivery(ctx, id)
	if err != nil {
		return Delivery{}, err
	}
	if tag.RowsAffected() == 0 {
		return Delivery{}, fault.Conflictf(CodeEndpointInactive,
			"the delivery's endpoint is disabled or deleted; enable the endpoint first, or create a new one")
	}
	s.log.Info("webhook delivery resent", "delivery", id, "endpoint", d.EndpointID, "event", d.EventID)
	s.Nudge()
	return d, nil
}

// Nudge wakes this process's dispatcher, if it is waiting: new deliveries
// are due (the relay calls it after a fan-out commits).
func (s *Service) Nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
