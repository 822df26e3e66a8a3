package webhook

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/ledger"
)

// Rotation keeps the replaced secret beside the new one until it expires.

// Rotation overlap: how long the replaced secret keeps signing deliveries
// beside the new one.
const (
	DefaultSecretOverlap = 24 * time.Hour
	MaxSecretOverlap     = 7 * 24 * time.Hour
)

// RotateSecret gives an endpoint a new secret and returns the endpoint with
// it; the secret is not shown again. With a positive overlap the replaced
// secret keeps signing every delivery for that long too (webhook-signature
// carries both signatures), so receivers can switch without dropping one;
// overlap 0 drops it at once. A secret replaced by an earlier rotation is dropped
// whatever its expiry: there is at most one previous secret. Deliveries
// being sent at this moment carry the signatures they were claimed with.
func (s *Service) RotateSecret(ctx context.Context, id uuid.UUID, overlap time.Duration) (Endpoint, string, error) {
	if overlap < 0 || overlap > MaxSecretOverlap {
		return Endpoint{}, "", invalid("previous_secret_expires_in_seconds", "must be from 0 to %d",
			int64(MaxSecretOverlap/time.Second))
	}
	secret := NewSecret()
	now := s.now().UTC().Truncate(time.Microsecond)
	var e Endpoint
	err := s.db.RunTx(ctx, ledger.TxOptions{IsoLevel: pgx.ReadCommitted}, func(ctx context.Context, tx pgx.Tx) error {
		var current string
		err := tx.QueryRow(ctx, `SELECT secret FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`,
			id).Scan(&current)
		if err != nil {
			return err
		}
		var (
			previous *string
			until    *time.Time
		)
		if overlap > 0 {
			at := now.Add(overlap)
			previous, until = &current, &at
		}
		rows, err := tx.Query(ctx, `UPDATE webhook_endpoints SET secret = $2, previous_secret = $3, previous_secret_expires_at = $4
			WHERE id = $1 RETURNING `+endpointColumns, id, secret, previous, until)
		if err != nil {
			return err
		}
		e, err = pgx.CollectExactlyOneRow(rows, s.scanEndpoint)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Endpoint{}, "", ErrNotFound
	}
	if err != nil {
		return Endpoint{}, "", fmt.Errorf("rotate webhook secret: %w", err)
	}
	s.log.Info("webhook endpoint secret rotated", "endpoint", id, "previous_secret_expires_at", e.PreviousSecretExpiresAt)
	return e, secret, nil
}
