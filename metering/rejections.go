package metering

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/text"
)

type rejectionRow struct {
	rej      EventRejection
	raw      []byte
	customer string
}

// dedupeKey names a rejection by what was sent and why it was refused, so
// the same bad event sent again (a NATS redelivery, a client's retry of the
// whole batch) is recorded once.
func (r rejectionRow) dedupeKey(source string) string {
	h := sha256.New()
	for _, part := range [][]byte{[]byte(source), []byte(r.rej.Code), []byte(r.customer), r.raw} {
		h.Write(part)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// recordRejections stores rejected events, each once (see dedupeKey).
func (s *Service) recordRejections(ctx context.Context, source string, at time.Time, rows []rejectionRow) error {
	n := len(rows)
	if n == 0 {
		return nil
	}
	ids := make([]uuid.UUID, n)
	eventIDs, customers, raws := make([]*string, n), make([]*string, n), make([]string, n)
	codes, details, keys := make([]string, n), make([]string, n), make([]string, n)
	for i, r := range rows {
		ids[i], codes[i], details[i], keys[i] = uuid.New(), r.rej.Code, storable(r.rej.Detail, 1000), r.dedupeKey(source)
		if r.rej.EventID != "" {
			e := storable(r.rej.EventID, 128)
			eventIDs[i] = &e
		}
		if r.customer != "" {
			c := storable(r.customer, 128)
			customers[i] = &c
		}
		raws[i] = storable(string(r.raw), MaxEventBytes)
	}
	tag, err := s.db.Pool.Exec(ctx, `INSERT INTO event_rejections (id, event_id, customer_id, source, code, detail, raw, received_at, dedupe_key)
		SELECT u.id, u.e, u.c, $7, u.code, u.detail, u.raw, $8, u.k
		FROM unnest($1::UUID[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $9::TEXT[]) AS u(id, e, c, code, detail, raw, k)
		ON CONFLICT (dedupe_key) DO NOTHING`,
		ids, eventIDs, customers, codes, details, raws, source, at, keys)
	if err != nil {
		return fmt.Errorf("record rejected events: %w", err)
	}
	if tag.RowsAffected() > 0 {
		s.log.Debug("events rejected", "count", tag.RowsAffected(), "source", source, "first_code", rows[0].rej.Code)
	}
	return nil
}

// storable is s as PostgreSQL TEXT takes it: valid UTF-8 without NUL, at
// most max bytes. A rejection must be recordable whatever was sent: what
// was refused is kept as faithfully as the column allows.
func storable(s string, max int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", "\uFFFD"), "\uFFFD")
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "")
	}
	return s
}

// ParkedEvent is an event that failed too often to go on retrying.
type ParkedEvent struct {
	Raw        []byte
	Customer   string // as the event, or its subject, names it
	Deliveries int
	Cause      error
}

// Park records events that could not be applied after many deliveries, for
// a reason nobody classified (a bug, a schema that does not match), as
// rejections with code CodeParked: visible in GET /v1/events/rejected with
// their raw body, never lost, and no longer retried. Once the cause is
// fixed, sending them again applies them: a rejection does not take the
// event id.
func (s *Service) Park(ctx context.Context, source string, events []ParkedEvent) error {
	rows := make([]rejectionRow, len(events))
	for i, e := range events {
		rows[i] = rejectionRow{raw: e.Raw, customer: e.Customer, rej: EventRejection{EventID: guessID(e.Raw), Code: CodeParked,
			Detail: fmt.Sprintf("not applied after %d deliveries: %v; send it again once the cause is fixed", e.Deliveries, e.Cause)}}
	}
	if err := s.recordRejections(ctx, source, s.l.Now(), rows); err != nil {
		return err
	}
	s.observer.Parked(source, len(events))
	return nil
}

// RecordedRejection is a rejected event as stored.
type RecordedRejection struct {
	ID         uuid.UUID `json:"id"`
	EventID    string    `json:"event_id,omitempty"`
	CustomerID string    `json:"customer_id,omitempty"`
	Source     string    `json:"source"`
	Code       string    `json:"code"`
	Detail     string    `json:"detail"`
	Raw        string    `json:"raw,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
}

func (s *Service) Rejections(ctx context.Context, customerID, cursor string, limit int) ([]RecordedRejection, string, error) {
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	if text.Check("customer_id", customerID, 128) != nil {
		return []RecordedRejection{}, "", nil // no rejection is recorded under such an id (guessCustomer)
	}
	args := []any{limit + 1}
	where := `WHERE true`
	if customerID != "" {
		args = append(args, customerID)
		where += fmt.Sprintf(` AND customer_id = $%d`, len(args))
	}
	if cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(cursor)
		at, id, ok := strings.Cut(string(raw), "|")
		t, terr := time.Parse(time.RFC3339Nano, at)
		u, uerr := uuid.Parse(id)
		if err != nil || !ok || terr != nil || uerr != nil {
			return nil, "", fault.Invalidf("cursor", "not a cursor from this list")
		}
		args = append(args, t, u)
		where += fmt.Sprintf(` AND (received_at, id) < ($%d, $%d)`, len(args)-1, len(args))
	}
	rows, err := s.db.Pool.Query(ctx, `SELECT id, event_id, customer_id, source, code, detail, raw, received_at
		FROM event_rejections `+where+` ORDER BY received_at DESC, id DESC LIMIT $1`, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list rejections: %w", err)
	}
	defer rows.Close()
	out := []RecordedRejection{}
	for rows.Next() {
		var (
			r             RecordedRejection
			ev, cust, raw *string
		)
		if err := rows.Scan(&r.ID, &ev, &cust, &r.Source, &r.Code, &r.Detail, &raw, &r.ReceivedAt); err != nil {
			return nil, "", err
		}
		for dst, src := range map[*string]*string{&r.EventID: ev, &r.CustomerID: cust, &r.Raw: raw} {
			if src != nil {
				*dst = *src
			}
		}
		r.ReceivedAt = r.ReceivedAt.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = base64.RawURLEncoding.EncodeToString([]byte(last.ReceivedAt.Format(time.RFC3339Nano) + "|" + last.ID.String()))
	}
	return out, next, nil
}
