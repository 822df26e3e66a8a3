package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/ledger"
)

var _ ledger.OutboxHandler = (*Service)(nil)

// event is a webhook's body. Its bytes are made once, at fan-out, and sent
// unchanged by every attempt: a signature a receiver checked once stays
// checkable, and a resend is byte-for-byte the original.
type event struct {
	ID        uuid.UUID       `json:"id"`
	Type      string          `json:"type"`
	CreatedAt time.Time       `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

// HandleOutbox fans committed outbox messages out into deliveries: one per
// enabled endpoint subscribed to the message's topic. It runs in the
// relay's transaction, so the deliveries are written exactly once with the
// messages marked processed. Topics that are not public event types are
// ignored.
func (s *Service) HandleOutbox(ctx context.Context, tx pgx.Tx, msgs []ledger.OutboxMessage) error {
	public := slices.DeleteFunc(slices.Clone(msgs), func(m ledger.OutboxMessage) bool { return !IsEventType(m.Topic) })
	if len(public) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT id, event_types FROM webhook_endpoints
		WHERE deleted_at IS NULL AND disabled_at IS NULL`)
	if err != nil {
		return fmt.Errorf("webhook fan-out: endpoints: %w", err)
	}
	type target struct {
		id    uuid.UUID
		types []string
	}
	targets, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (target, error) {
		var t target
		return t, row.Scan(&t.id, &t.types)
	})
	if err != nil {
		return fmt.Errorf("webhook fan-out: endpoints: %w", err)
	}
	if len(targets) == 0 {
		return nil
	}

	now := s.now()
	var (
		ids, endpoints, events []uuid.UUID
		types, bodies          []string
	)
	for _, m := range public {
		body, err := eventBody(m)
		if err != nil {
			return err
		}
		for _, t := range targets {
			if len(t.types) > 0 && !slices.Contains(t.types, m.Topic) {
				continue
			}
			// Time-ordered ids: an endpoint's deliveries are sent in id
			// order among those due at the same instant, which is the order
			// the events were emitted.
			ids = append(ids, uuid.Must(uuid.NewV7()))
			endpoints = append(endpoints, t.id)
			events = append(events, m.ID)
			types = append(types, m.Topic)
			bodies = append(bodies, body)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	// ON CONFLICT: a message handed over twice (it cannot be, within one
	// relay transaction, but a handler must not trust that) fans out once.
	_, err = tx.Exec(ctx, `INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, body, status, next_attempt_at, created_at)
		SELECT u.id, u.endpoint_id, u.event_id, u.event_type, u.body, 'pending', $6, $6
		FROM unnest($1::UUID[], $2::UUID[], $3::UUID[], $4::TEXT[], $5::TEXT[]) AS u(id, endpoint_id, event_id, event_type, body)
		ON CONFLICT (endpoint_id, event_id) DO NOTHING`, ids, endpoints, events, types, bodies, now)
	if err != nil {
		return fmt.Errorf("webhook fan-out: insert deliveries: %w", err)
	}
	return nil
}

// eventBody is the JSON body of a message's webhook.
func eventBody(m ledger.OutboxMessage) (string, error) {
	data := m.Payload
	if len(bytes.TrimSpace(data)) == 0 || bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		data = json.RawMessage(`{}`)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(event{ID: m.ID, Type: m.Topic, CreatedAt: m.CreatedAt.UTC(), Data: data}); err != nil {
		return "", fmt.Errorf("webhook body of outbox message %s: %w", m.ID, err)
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), nil
}
