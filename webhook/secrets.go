package webhook

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/secretbox"
)

// How an endpoint's secrets are kept. A secret is stored as issued
// ("whsec_…") or, when the service has a SecretBox, sealed ("enc:v1:…")
// with the endpoint id as additional data. Both forms may be in the table
// at once: rows written before the key was set stay readable, and
// SealSecrets seals them in place. Rotation keeps the replaced secret, in
// whatever form it was stored, beside the new one until it expires.

// Rotation overlap: how long the replaced secret keeps signing deliveries
// beside the new one.
const (
	DefaultSecretOverlap = 24 * time.Hour
	MaxSecretOverlap     = 7 * 24 * time.Hour
)

// storedSecret is secret in the form it is stored in endpoint id's row.
func (s *Service) storedSecret(id uuid.UUID, secret string) string {
	if s.opts.SecretBox == nil {
		return secret
	}
	return s.opts.SecretBox.Seal([]byte(secret), id[:])
}

// errSecretSealed and errSecretUnreadable say why an endpoint's stored
// secret cannot be used; the text is recorded with each attempt it stops.
var (
	errSecretSealed = errors.New("the endpoint's secret is stored encrypted and the server has no encryption key " +
		"(LEDGER_ENCRYPTION_KEY): set the key it was encrypted with")
	errSecretUnreadable = errors.New("the endpoint's secret does not decrypt with the server's encryption key " +
		"(LEDGER_ENCRYPTION_KEY): set the key it was encrypted with")
)

// secretKey is the HMAC key of the secret stored in endpoint id's row.
func (s *Service) secretKey(id uuid.UUID, stored string) ([]byte, error) {
	secret := stored
	if secretbox.IsSealed(stored) {
		if s.opts.SecretBox == nil {
			return nil, errSecretSealed
		}
		plain, err := s.opts.SecretBox.Open(stored, id[:])
		if errors.Is(err, secretbox.ErrOpen) {
			return nil, errSecretUnreadable
		}
		if err != nil {
			return nil, fmt.Errorf("the endpoint's stored secret: %w", err)
		}
		secret = string(plain)
	}
	return SecretKey(secret)
}

// RotateSecret gives an endpoint a new secret and returns the endpoint with
// it; the secret is not shown again. With a positive overlap the replaced
// secret keeps signing every delivery for that long too (webhook-signature
// carries both signatures), so receivers can switch without dropping one;
// overlap 0 drops it at once. A secret replaced by an earlier rotation is dropped
// whatever its expiry: there is at most one previous secret. Deliveries
// being sent at this moment carry the signatures they were claimed with.
func (s *Service) RotateSecret(ctx context.Context, id uuid.UUID, overlap time.Duration) (Endpoint, string, error) {
	if overlap < 0 || overlap > MaxSecretOverlap {
		return Endpoint{}, "", fault.Invalidf("previous_secret_expires_in_seconds", "must be from 0 to %d",
			int64(MaxSecretOverlap/time.Second))
	}
	secret := NewSecret()
	now := s.now().UTC().Truncate(time.Microsecond)
	var e Endpoint
	err := s.db.RunTx(ctx, pg.TxOptions{IsoLevel: pgx.ReadCommitted}, func(ctx context.Context, tx pgx.Tx) error {
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
			// Sealed if this service seals: a row written before the key
			// was set must not keep a plaintext secret for days more.
			if s.opts.SecretBox != nil && !secretbox.IsSealed(current) {
				current = s.storedSecret(id, current)
			}
			at := now.Add(overlap)
			previous, until = &current, &at
		}
		rows, err := tx.Query(ctx, `UPDATE webhook_endpoints SET secret = $2, previous_secret = $3, previous_secret_expires_at = $4
			WHERE id = $1 RETURNING `+endpointColumns, id, s.storedSecret(id, secret), previous, until)
		if err != nil {
			return err
		}
		e, err = pgx.CollectExactlyOneRow(rows, s.scanEndpoint)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Endpoint{}, "", fault.NotFoundf("webhook endpoint %s", id)
	}
	if err != nil {
		return Endpoint{}, "", fmt.Errorf("rotate webhook secret: %w", err)
	}
	s.log.Info("webhook endpoint secret rotated", "endpoint", id, "previous_secret_expires_at", e.PreviousSecretExpiresAt)
	return e, secret, nil
}

// SealReport is what SealSecrets did and found.
type SealReport struct {
	// Sealed is how many stored secrets (current or previous) were
	// plaintext and are now encrypted.
	Sealed int
	// Unreadable is how many endpoints, not deleted, have a secret this
	// service cannot read: sealed while the service has no SecretBox, or
	// sealed with another key. Their deliveries fail until the key is set.
	Unreadable int
}

// SealSecrets encrypts in place the plaintext secrets of every endpoint,
// deleted ones included, when the service has a SecretBox, and counts the
// endpoints whose secrets it cannot read. ledgerd calls it at startup. It is
// idempotent, and safe beside other processes: a row is sealed only if its
// secret is still the plaintext that was read.
//
// It reads the whole table at once; endpoints are registered by hand, so
// there are few.
func (s *Service) SealSecrets(ctx context.Context) (SealReport, error) {
	type row struct {
		id               uuid.UUID
		secret, previous *string
		deleted          bool
	}
	rows, err := s.db.Pool.Query(ctx, `SELECT id, secret, previous_secret, deleted_at IS NOT NULL FROM webhook_endpoints`)
	if err != nil {
		return SealReport{}, fmt.Errorf("seal webhook secrets: %w", err)
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		return x, r.Scan(&x.id, &x.secret, &x.previous, &x.deleted)
	})
	if err != nil {
		return SealReport{}, fmt.Errorf("seal webhook secrets: %w", err)
	}
	var rep SealReport
	for _, r := range all {
		unreadable := false
		for _, col := range []struct {
			name   string
			stored *string
		}{{"secret", r.secret}, {"previous_secret", r.previous}} {
			if col.stored == nil {
				continue
			}
			if secretbox.IsSealed(*col.stored) {
				if _, err := s.secretKey(r.id, *col.stored); err != nil {
					unreadable = true
				}
				continue
			}
			if s.opts.SecretBox == nil {
				continue
			}
			// The column name is one of the two literals above.
			tag, err := s.db.Pool.Exec(ctx, `UPDATE webhook_endpoints SET `+col.name+` = $3 WHERE id = $1 AND `+col.name+` = $2`,
				r.id, *col.stored, s.storedSecret(r.id, *col.stored))
			if err != nil {
				return rep, fmt.Errorf("seal webhook secrets: endpoint %s: %w", r.id, err)
			}
			rep.Sealed += int(tag.RowsAffected())
		}
		if unreadable && !r.deleted {
			rep.Unreadable++
		}
	}
	return rep, nil
}
