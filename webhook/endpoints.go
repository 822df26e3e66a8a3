package webhook

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/cursor"
	"github.com/creditledger/creditledger/internal/pg"
)

// Endpoint is a registered receiver. Its secret is not part of it: it is
// shown once, by CreateEndpoint or RotateSecret.
type Endpoint struct {
	ID  uuid.UUID `json:"id"`
	URL string    `json:"url"`
	// EventTypes it subscribes to; empty means all.
	EventTypes []string  `json:"event_types"`
	CreatedAt  time.Time `json:"created_at"`
	// FailingSince is the first failed attempt since the last success;
	// null while the endpoint answers.
	FailingSince   *time.Time `json:"failing_since"`
	DisabledAt     *time.Time `json:"disabled_at"`
	DisabledReason *string    `json:"disabled_reason"`
	// PreviousSecretExpiresAt is when the secret replaced by the latest
	// rotation stops signing deliveries; null when there is none, or it
	// has expired.
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
}

// NewEndpoint is what CreateEndpoint needs.
type NewEndpoint struct {
	URL        string
	EventTypes []string // empty or nil: all event types
}

// CreateEndpoint registers an endpoint and returns it with its secret,
// which is not shown again.
func (s *Service) CreateEndpoint(ctx context.Context, req NewEndpoint) (Endpoint, string, error) {
	u, err := CheckURL(ctx, req.URL, s.opts.AllowPrivate)
	if err != nil {
		return Endpoint{}, "", err
	}
	types := []string{}
	for i, t := range req.EventTypes {
		if !IsEventType(t) {
			return Endpoint{}, "", fault.Invalidf("event_types."+strconv.Itoa(i),
				"unknown event type %q; known: %s", t, strings.Join(EventTypes(), ", "))
		}
		if !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	e := Endpoint{ID: uuid.Must(uuid.NewV7()), URL: u.String(), EventTypes: types, CreatedAt: now}
	secret := NewSecret()
	_, err = s.db.Pool.Exec(ctx, `INSERT INTO webhook_endpoints (id, url, event_types, secret, created_at, leased_until)
		VALUES ($1, $2, $3, $4, $5, $5)`, e.ID, e.URL, e.EventTypes, s.storedSecret(e.ID, secret), e.CreatedAt)
	if err != nil {
		return Endpoint{}, "", fmt.Errorf("create webhook endpoint: %w", err)
	}
	// The host only: receivers often put a token in the path or query.
	s.log.Info("webhook endpoint created", "endpoint", e.ID, "host", u.Host, "event_types", e.EventTypes)
	return e, secret, nil
}

const endpointColumns = `id, url, event_types, created_at, failing_since, disabled_at, disabled_reason, previous_secret_expires_at`

// scanEndpoint reads an endpoint row (endpointColumns). A previous secret
// that has expired reads as none, whether or not a dispatcher has cleared
// it from the row yet.
func (s *Service) scanEndpoint(row pgx.CollectableRow) (Endpoint, error) {
	var e Endpoint
	err := row.Scan(&e.ID, &e.URL, &e.EventTypes, &e.CreatedAt, &e.FailingSince, &e.DisabledAt, &e.DisabledReason,
		&e.PreviousSecretExpiresAt)
	if e.EventTypes == nil {
		e.EventTypes = []string{}
	}
	e.CreatedAt = e.CreatedAt.UTC()
	e.FailingSince, e.DisabledAt = utc(e.FailingSince), utc(e.DisabledAt)
	if e.PreviousSecretExpiresAt != nil && !s.now().Before(*e.PreviousSecretExpiresAt) {
		e.PreviousSecretExpiresAt = nil
	}
	e.PreviousSecretExpiresAt = utc(e.PreviousSecretExpiresAt)
	return e, err
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// Endpoint returns an endpoint that is not deleted.
func (s *Service) Endpoint(ctx context.Context, id uuid.UUID) (Endpoint, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints
		WHERE id = $1 AND deleted_at IS NULL`, id)
	if err != nil {
		return Endpoint{}, fmt.Errorf("read webhook endpoint: %w", err)
	}
	e, err := pgx.CollectExactlyOneRow(rows, s.scanEndpoint)
	if errors.Is(err, pgx.ErrNoRows) {
		return Endpoint{}, fault.NotFoundf("webhook endpoint %s", id)
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("read webhook endpoint: %w", err)
	}
	return e, nil
}

// Endpoints lists endpoints that are not deleted, newest first. cursor is
// from the previous page ("" for the first); the returned cursor is "" on
// the last page.
func (s *Service) Endpoints(ctx context.Context, after string, limit int) ([]Endpoint, string, error) {
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	q := `SELECT ` + endpointColumns + ` FROM webhook_endpoints WHERE deleted_at IS NULL`
	args := []any{limit + 1}
	if after != "" {
		c, err := parseCursor(after)
		if err != nil {
			return nil, "", err
		}
		q += ` AND (created_at, id) < ($2, $3)`
		args = append(args, c.At, c.ID)
	}
	rows, err := s.db.Pool.Query(ctx, q+` ORDER BY created_at DESC, id DESC LIMIT $1`, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list webhook endpoints: %w", err)
	}
	es, err := pgx.CollectRows(rows, s.scanEndpoint)
	if err != nil {
		return nil, "", fmt.Errorf("list webhook endpoints: %w", err)
	}
	es, next := cursor.Page(es, limit, func(e Endpoint) cursor.Cursor { return cursor.Cursor{At: e.CreatedAt, ID: e.ID} })
	return es, cursor.Next(next), nil
}

// parseCursor reads a list's cursor; a malformed one is a fault.Invalid.
func parseCursor(s string) (cursor.Cursor, error) {
	c, err := cursor.Parse(s)
	if err != nil {
		return c, fault.Invalidf("cursor", "is not a cursor this list returned")
	}
	return c, nil
}

// DeleteEndpoint deletes an endpoint: it gets no more deliveries, and its
// pending ones are failed. It returns the endpoint as it was.
func (s *Service) DeleteEndpoint(ctx context.Context, id uuid.UUID) (Endpoint, error) {
	var e Endpoint
	now := s.now()
	err := s.db.RunTx(ctx, pg.TxOptions{IsoLevel: pgx.ReadCommitted}, func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE webhook_endpoints SET deleted_at = $2
			WHERE id = $1 AND deleted_at IS NULL RETURNING `+endpointColumns, id, now)
		if err != nil {
			return err
		}
		if e, err = pgx.CollectExactlyOneRow(rows, s.scanEndpoint); err != nil {
			return err
		}
		// Bumping claim fences off a dispatcher sending one of them now.
		_, err = tx.Exec(ctx, `UPDATE webhook_deliveries
			SET status = 'failed', next_attempt_at = NULL, claim = claim + 1, last_error = 'endpoint deleted'
			WHERE endpoint_id = $1 AND status = 'pending'`, id)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Endpoint{}, fault.NotFoundf("webhook endpoint %s", id)
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("delete webhook endpoint: %w", err)
	}
	s.log.Info("webhook endpoint deleted", "endpoint", id)
	return e, nil
}

// EnableEndpoint enables a disabled endpoint again, with a clean failing
// state; its pending deliveries are sent from now on. Enabling an enabled
// endpoint changes nothing.
func (s *Service) EnableEndpoint(ctx context.Context, id uuid.UUID) (Endpoint, error) {
	rows, err := s.db.Pool.Query(ctx, `UPDATE webhook_endpoints
		SET disabled_at = NULL, disabled_reason = NULL, failing_since = NULL
		WHERE id = $1 AND deleted_at IS NULL RETURNING `+endpointColumns, id)
	if err != nil {
		return Endpoint{}, fmt.Errorf("enable webhook endpoint: %w", err)
	}
	e, err := pgx.CollectExactlyOneRow(rows, s.scanEndpoint)
	if errors.Is(err, pgx.ErrNoRows) {
		return Endpoint{}, fault.NotFoundf("webhook endpoint %s", id)
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("enable webhook endpoint: %w", err)
	}
	s.Nudge()
	return e, nil
}
