package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/internal/pg"
)

// How dispatchers share the work. A claim is a short transaction: it locks
// endpoints with due deliveries (FOR UPDATE SKIP LOCKED, so dispatchers
// pass each other by) and leases each one, with up to perEndpoint of its
// due deliveries, by pushing leased_until and the deliveries'
// next_attempt_at forward and bumping their counters. The endpoint lease is
// what keeps an endpoint's deliveries sequential and in order across
// processes; the delivery counter (claim) is the fence: an outcome is
// recorded only while the claim it was sent under is still the delivery's
// (a resend or delete bumps it). Requests are sent outside any transaction.
// A dispatcher that dies leaves its leases to run out; what it was sending
// is sent again, which at-least-once allows.

// claimed is an endpoint leased to this dispatcher, with its deliveries in
// the order they are to be sent.
type claimed struct {
	endpoint      uuid.UUID
	url           string
	secret        string     // as stored: plaintext or sealed
	previous      *string    // the secret a rotation replaced, as stored; nil: none
	previousUntil *time.Time // when previous stops signing
	lease         int64
	deliveries    []claimedDelivery
}

type claimedDelivery struct {
	id, eventID uuid.UUID
	eventType   string
	body        []byte
	failures    int
	claim       int64
	due         time.Time // next_attempt_at before the claim, to give it back
}

// RunOnce claims what is due now, for up to Concurrency endpoints, sends it
// and waits for the outcomes. It reports how many attempts were made.
func (s *Service) RunOnce(ctx context.Context) (int, error) {
	batch, err := s.claim(ctx, s.opts.Concurrency)
	if err != nil {
		return 0, err
	}
	var (
		wg sync.WaitGroup
		n  atomic.Int64
	)
	for _, c := range batch {
		wg.Go(func() { n.Add(int64(s.deliver(ctx, c))) })
	}
	wg.Wait()
	return int(n.Load()), nil
}

// Run dispatches until ctx ends, sending to up to Concurrency endpoints at
// once: whenever one finishes, the freed slot is filled at once if more is
// due. It returns when the sends in flight have finished.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, s.opts.Concurrency)
	freed := make(chan struct{}, 1)
	tick := time.NewTicker(s.opts.PollInterval)
	defer tick.Stop()
	for {
		if free := cap(slots) - len(slots); free > 0 && ctx.Err() == nil {
			batch, err := s.claim(ctx, free)
			if err != nil && ctx.Err() == nil {
				s.logs.Log(s.log, slog.LevelError, "webhook dispatcher: claim", "err", err)
			}
			for _, c := range batch {
				slots <- struct{}{}
				wg.Go(func() {
					defer func() {
						<-slots
						select {
						case freed <- struct{}{}:
						default:
						}
					}()
					s.deliver(ctx, c)
				})
			}
			if err == nil && len(batch) == free {
				continue // there may be more due
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.wake:
		case <-freed:
		}
	}
}

// claim leases up to n endpoints with due deliveries.
func (s *Service) claim(ctx context.Context, n int) ([]*claimed, error) {
	now := s.now()
	until := now.Add(s.lease())
	var out []*claimed
	err := s.db.RunTx(ctx, pg.TxOptions{IsoLevel: pgx.ReadCommitted}, func(ctx context.Context, tx pgx.Tx) error {
		out = nil // a retried transaction starts over
		rows, err := tx.Query(ctx, `SELECT e.id FROM webhook_endpoints e
			WHERE e.deleted_at IS NULL AND e.disabled_at IS NULL AND e.leased_until <= $1
			AND EXISTS (SELECT 1 FROM webhook_deliveries d
				WHERE d.endpoint_id = e.id AND d.status = 'pending' AND d.next_attempt_at <= $1)
			ORDER BY e.leased_until, e.id LIMIT $2 FOR UPDATE SKIP LOCKED`, now, n)
		if err != nil {
			return fmt.Errorf("claim endpoints: %w", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil || len(ids) == 0 {
			return err
		}
		// An expired previous secret is cleared on the way: it signs
		// nothing more, and a secret not kept cannot leak.
		rows, err = tx.Query(ctx, `UPDATE webhook_endpoints SET leased_until = $2, lease = lease + 1,
				previous_secret = CASE WHEN previous_secret_expires_at > $3 THEN previous_secret END,
				previous_secret_expires_at = CASE WHEN previous_secret_expires_at > $3 THEN previous_secret_expires_at END
			WHERE id = ANY($1) RETURNING id, url, secret, previous_secret, previous_secret_expires_at, lease`, ids, until, now)
		if err != nil {
			return fmt.Errorf("lease endpoints: %w", err)
		}
		byEndpoint := map[uuid.UUID]*claimed{}
		for rows.Next() {
			c := &claimed{}
			if err := rows.Scan(&c.endpoint, &c.url, &c.secret, &c.previous, &c.previousUntil, &c.lease); err != nil {
				rows.Close()
				return fmt.Errorf("lease endpoints: %w", err)
			}
			byEndpoint[c.endpoint] = c
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("lease endpoints: %w", err)
		}

		// The first perEndpoint due deliveries of each, in sending order.
		rows, err = tx.Query(ctx, `SELECT id, endpoint_id, next_attempt_at FROM (
				SELECT id, endpoint_id, next_attempt_at,
					row_number() OVER (PARTITION BY endpoint_id ORDER BY next_attempt_at, id) AS rn
				FROM webhook_deliveries
				WHERE endpoint_id = ANY($1) AND status = 'pending' AND next_attempt_at <= $2) AS due
			WHERE rn <= $3 ORDER BY endpoint_id, next_attempt_at, id`, ids, now, perEndpoint)
		if err != nil {
			return fmt.Errorf("claim deliveries: %w", err)
		}
		type due struct {
			id, endpoint uuid.UUID
			at           time.Time
		}
		dues, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (due, error) {
			var d due
			return d, row.Scan(&d.id, &d.endpoint, &d.at)
		})
		if err != nil {
			return fmt.Errorf("claim deliveries: %w", err)
		}
		dueIDs := make([]uuid.UUID, len(dues))
		for i, d := range dues {
			dueIDs[i] = d.id
		}
		// status = 'pending' again: a delete may have failed one since.
		rows, err = tx.Query(ctx, `UPDATE webhook_deliveries SET next_attempt_at = $2, claim = claim + 1
			WHERE id = ANY($1) AND status = 'pending'
			RETURNING id, event_id, event_type, body, failures, claim`, dueIDs, until)
		if err != nil {
			return fmt.Errorf("claim deliveries: %w", err)
		}
		leased := map[uuid.UUID]claimedDelivery{}
		for rows.Next() {
			var (
				d        claimedDelivery
				body     string
				failures int64
			)
			if err := rows.Scan(&d.id, &d.eventID, &d.eventType, &body, &failures, &d.claim); err != nil {
				rows.Close()
				return fmt.Errorf("claim deliveries: %w", err)
			}
			d.body, d.failures = []byte(body), int(failures)
			leased[d.id] = d
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("claim deliveries: %w", err)
		}
		for _, d := range dues {
			if l, ok := leased[d.id]; ok {
				l.due = d.at
				c := byEndpoint[d.endpoint]
				c.deliveries = append(c.deliveries, l)
			}
		}
		for _, id := range ids {
			out = append(out, byEndpoint[id])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("webhook claim: %w", err)
	}
	return out, nil
}

// deliver sends an endpoint's claimed deliveries one after the other and
// gives the endpoint back. It reports how many attempts it made.
func (s *Service) deliver(ctx context.Context, c *claimed) int {
	// Recording must survive a shutdown that begins mid-attempt.
	bg := context.WithoutCancel(ctx)
	defer func() {
		rctx, cancel := context.WithTimeout(bg, 10*time.Second)
		defer cancel()
		if _, err := s.db.Pool.Exec(rctx, `UPDATE webhook_endpoints SET leased_until = $3 WHERE id = $1 AND lease = $2`,
			c.endpoint, c.lease, s.now()); err != nil {
			s.log.Warn("webhook dispatcher: release endpoint", "endpoint", c.endpoint, "err", err)
		}
	}()
	// A secret that cannot be read (encrypted without the key here, or
	// malformed) fails each delivery as an attempt, with the reason in the
	// delivery log, and retries on the schedule: it may be fixed meanwhile.
	sign, signErr := s.signer(c)
	if signErr != nil {
		s.log.Warn("webhook endpoint's secret cannot be used; its deliveries fail", "endpoint", c.endpoint, "err", signErr)
	}
	sent := 0
	for i, d := range c.deliveries {
		if ctx.Err() != nil {
			s.giveBack(bg, c.deliveries[i:])
			break
		}
		var res result
		if signErr != nil {
			res = result{at: s.now(), err: "not sent: " + signErr.Error()}
		} else {
			res = s.attempt(ctx, c.url, sign, d)
		}
		if !res.ok() && ctx.Err() != nil {
			// Our own shutdown cut it short: not the endpoint's failure.
			s.giveBack(bg, c.deliveries[i:])
			break
		}
		sent++
		rctx, cancel := context.WithTimeout(bg, 10*time.Second)
		active, err := s.record(rctx, c.endpoint, d, res)
		cancel()
		if err != nil {
			// This one is sent again when its lease runs out.
			s.log.Error("webhook dispatcher: record attempt", "delivery", d.id, "err", err)
			s.giveBack(bg, c.deliveries[i+1:])
			break
		}
		if !active {
			s.giveBack(bg, c.deliveries[i+1:])
			break
		}
	}
	return sent
}

// signer reads a claimed endpoint's secrets. A previous secret that cannot
// be read is left out, with a warning: the current one still signs.
func (s *Service) signer(c *claimed) (signer, error) {
	key, err := s.secretKey(c.endpoint, c.secret)
	if err != nil {
		return signer{}, err
	}
	g := signer{current: key}
	if c.previous != nil && c.previousUntil != nil {
		prev, err := s.secretKey(c.endpoint, *c.previous)
		if err != nil {
			s.log.Warn("webhook endpoint's previous secret cannot be used; signing with the current one only",
				"endpoint", c.endpoint, "err", err)
		} else {
			g.previous, g.previousUntil = prev, *c.previousUntil
		}
	}
	return g, nil
}

// giveBack returns claimed deliveries that were not sent to their places,
// so they need not wait for the lease to run out.
func (s *Service) giveBack(ctx context.Context, ds []claimedDelivery) {
	if len(ds) == 0 {
		return
	}
	ids, claims, dues := make([]uuid.UUID, len(ds)), make([]int64, len(ds)), make([]time.Time, len(ds))
	for i, d := range ds {
		ids[i], claims[i], dues[i] = d.id, d.claim, d.due
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := s.db.Pool.Exec(rctx, `UPDATE webhook_deliveries AS d SET next_attempt_at = u.due
		FROM unnest($1::UUID[], $2::INT8[], $3::TIMESTAMPTZ[]) AS u(id, claim, due)
		WHERE d.id = u.id AND d.claim = u.claim AND d.status = 'pending'`, ids, claims, dues)
	if err != nil {
		s.log.Warn("webhook dispatcher: give back deliveries", "err", err)
	}
}

// result is the outcome of one attempt.
type result struct {
	at       time.Time
	status   int    // 0: no response
	err      string // "" on a 2xx
	duration time.Duration
}

func (r result) ok() bool { return r.err == "" }

// attempt sends one delivery.
func (s *Service) attempt(ctx context.Context, target string, sign signer, d claimedDelivery) result {
	res := result{at: s.now()}
	start := time.Now()
	actx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, target, bytes.NewReader(d.body))
	if err != nil {
		res.err = "invalid request: " + err.Error()
		return res
	}
	id := d.eventID.String()
	// Set as written in the Standard Webhooks spec, lower case; HTTP
	// header names are case-insensitive anyway.
	req.Header["webhook-id"] = []string{id}
	req.Header["webhook-timestamp"] = []string{strconv.FormatInt(res.at.Unix(), 10)}
	req.Header["webhook-signature"] = []string{sign.header(id, res.at, d.body)}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)

	resp, err := s.client.Do(req)
	res.duration = time.Since(start)
	if err != nil {
		res.err = s.describe(ctx, err)
		return res
	}
	// Drain a little, so the connection can be reused; the body is not kept.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	res.status = resp.StatusCode
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		res.err = "HTTP " + strconv.Itoa(resp.StatusCode)
		if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
			res.err += " (redirects are not followed)"
		}
	}
	return res
}

// describe says why no response came, for the delivery log.
func (s *Service) describe(ctx context.Context, err error) string {
	var blocked *BlockedError
	var uerr *url.Error
	switch {
	case errors.As(err, &blocked):
		return "blocked: " + blocked.Error()
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return "timeout: no response within " + s.opts.Timeout.String()
	case errors.As(err, &uerr):
		// "Post <url>: <cause>" says the URL again; the cause is enough.
		return uerr.Err.Error()
	}
	return err.Error()
}

// maxErrorLen bounds a stored error message.
const maxErrorLen = 1000

// record stores an attempt and what it means for the delivery and the
// endpoint, and reports whether the endpoint may still be sent to.
func (s *Service) record(ctx context.Context, endpoint uuid.UUID, d claimedDelivery, res result) (bool, error) {
	status, failures, next := StatusSucceeded, 0, (*time.Time)(nil)
	if !res.ok() {
		failures = d.failures + 1
		status = StatusFailed
		if failures <= len(s.opts.Schedule) {
			status = StatusPending
			at := s.now().Add(jitter(s.opts.Schedule[failures-1]))
			next = &at
		}
	}
	var (
		code   *int
		errMsg *string
	)
	if res.status != 0 {
		code = &res.status
	}
	if !res.ok() {
		m := res.err
		if len(m) > maxErrorLen {
			m = m[:maxErrorLen]
		}
		errMsg = &m
	}
	now := s.now()
	active := true
	err := s.db.RunTx(ctx, pg.TxOptions{IsoLevel: pgx.ReadCommitted}, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO webhook_attempts (id, delivery_id, attempted_at, status_code, error, duration_ms)
			VALUES ($1, $2, $3, $4, $5, $6)`,
			uuid.Must(uuid.NewV7()), d.id, res.at, code, errMsg, res.duration.Milliseconds()); err != nil {
			return fmt.Errorf("insert attempt: %w", err)
		}
		tag, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET status = $3, attempts = attempts + 1, failures = $4,
				next_attempt_at = $5, last_attempt_at = $6, last_status_code = $7, last_error = $8
			WHERE id = $1 AND claim = $2`, d.id, d.claim, status, failures, next, res.at, code, errMsg)
		if err != nil {
			return fmt.Errorf("update delivery: %w", err)
		}
		if tag.RowsAffected() == 0 {
			// Resent or deleted meanwhile: the attempt happened and is
			// counted, but the delivery's state is no longer ours to set.
			if _, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET attempts = attempts + 1 WHERE id = $1`, d.id); err != nil {
				return fmt.Errorf("count attempt: %w", err)
			}
		}
		if res.ok() {
			_, err := tx.Exec(ctx, `UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL`, endpoint)
			if err != nil {
				return fmt.Errorf("update endpoint: %w", err)
			}
		} else {
			var since time.Time
			err := tx.QueryRow(ctx, `UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2)
				WHERE id = $1 RETURNING failing_since`, endpoint, res.at).Scan(&since)
			if err != nil {
				return fmt.Errorf("update endpoint: %w", err)
			}
			if now.Sub(since) >= s.opts.DisableAfter {
				reason := fmt.Sprintf("every attempt since %s failed (last: %s)", since.UTC().Format(time.RFC3339), res.err)
				if len(reason) > maxErrorLen {
					reason = reason[:maxErrorLen]
				}
				tag, err := tx.Exec(ctx, `UPDATE webhook_endpoints SET disabled_at = $2, disabled_reason = $3
					WHERE id = $1 AND disabled_at IS NULL AND deleted_at IS NULL`, endpoint, now, reason)
				if err != nil {
					return fmt.Errorf("disable endpoint: %w", err)
				}
				if tag.RowsAffected() == 1 {
					s.log.Warn("webhook endpoint disabled", "endpoint", endpoint, "reason", reason)
				}
			}
		}
		return tx.QueryRow(ctx, `SELECT deleted_at IS NULL AND disabled_at IS NULL FROM webhook_endpoints WHERE id = $1`,
			endpoint).Scan(&active)
	})
	if err != nil {
		return false, err
	}
	s.log.Debug("webhook attempt", "delivery", d.id, "endpoint", endpoint, "event", d.eventID, "type", d.eventType,
		"status_code", res.status, "err", res.err, "next", status)
	return active, nil
}

// jitter varies d by ±20%, so retries of many deliveries that failed
// together (an outage) do not all arrive at the same instant.
func jitter(d time.Duration) time.Duration {
	return d*8/10 + rand.N(d*4/10+1)
}
