package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/ratelog"
)

// OutboxMessage is one side effect a committed batch asked for.
type OutboxMessage struct {
	ID        uuid.UUID // stable: receivers dedupe on it
	Topic     string
	Owner     OwnerID // zero when none
	EntryID   EntryID // the entry that caused it; zero when none
	Payload   json.RawMessage
	CreatedAt time.Time
	Attempts  int // earlier failed relays of this message
}

// OutboxHandler acts on committed outbox messages. HandleOutbox runs inside
// the relay's transaction, which marks the messages processed: what the
// handler writes with tx (webhook deliveries) happens exactly once with
// them. Anything it does outside tx (submitting a ledger op) must be
// idempotent, because a failed relay transaction hands the same messages
// over again.
type OutboxHandler interface {
	HandleOutbox(ctx context.Context, tx pgx.Tx, msgs []OutboxMessage) error
}

// OutboxHandlerFunc adapts a function to OutboxHandler.
type OutboxHandlerFunc func(ctx context.Context, tx pgx.Tx, msgs []OutboxMessage) error

func (f OutboxHandlerFunc) HandleOutbox(ctx context.Context, tx pgx.Tx, msgs []OutboxMessage) error {
	return f(ctx, tx, msgs)
}

// Relay moves committed outbox rows to their handlers. Several relays (in
// several processes) may run at once: each claims rows with FOR UPDATE SKIP
// LOCKED, so a message is handed to one relay at a time.
type Relay struct {
	db       *pg.DB
	log      *slog.Logger
	handlers []OutboxHandler
	limit    int
	// Now is the relay's clock (default time.Now): a message is due when
	// its available_at has passed. Tests that move the ledger's clock move
	// this one with it.
	Now func() time.Time
	// Relayed, if set, is called after a transaction that relayed messages
	// commits: a dispatcher waiting for work can start at once rather than
	// at its next poll.
	Relayed func()

	logs ratelog.Limiter // for failures that repeat while the database is away
}

// NewRelay returns a relay handing messages to handlers in order.
func NewRelay(db *pg.DB, log *slog.Logger, handlers ...OutboxHandler) *Relay {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{db: db, log: log, handlers: handlers, limit: 200, Now: time.Now}
}

// relayBackoff is how long a message waits after a failed relay: doubling
// from a second up to five minutes. A handler that keeps failing never
// blocks the messages behind it, which are claimed in the meantime.
func relayBackoff(attempts int) time.Duration {
	return min(time.Second<<min(attempts, 16), 5*time.Minute)
}

// RunOnce relays what is due and reports how many messages were processed.
// A batch whose handler fails is retried message by message, so one bad
// message is set aside (with its error and a backoff) and the rest go on.
func (r *Relay) RunOnce(ctx context.Context) (int, error) {
	n, err := r.relay(ctx, nil)
	if err == nil {
		if n > 0 && r.Relayed != nil {
			r.Relayed()
		}
		return n, nil
	}
	if pg.KindOf(err) == fault.Unavailable {
		// Message by message would fail the same way, ten times a second.
		return 0, err
	}
	r.log.Warn("outbox relay batch failed; relaying one by one", "err", err)
	ids, lerr := r.due(ctx)
	if lerr != nil {
		return 0, lerr
	}
	done := 0
	for _, id := range ids {
		k, err := r.relay(ctx, &id)
		if err != nil {
			if ferr := r.fail(ctx, id, err); ferr != nil {
				return done, ferr
			}
			r.log.Error("outbox message failed", "id", id, "err", err)
			continue
		}
		done += k
	}
	if done > 0 && r.Relayed != nil {
		r.Relayed()
	}
	return done, nil
}

// Run relays every interval until ctx ends.
func (r *Relay) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for {
			n, err := r.RunOnce(ctx)
			if err != nil && ctx.Err() == nil {
				r.logs.Log(r.log, slog.LevelError, "outbox relay", "err", err)
			}
			if n < r.limit || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

const outboxColumns = `id, topic, owner_id, entry_id, payload, created_at, attempts`

// relay claims due messages (only *one when set), hands them to every
// handler and marks them processed, all in one transaction.
func (r *Relay) relay(ctx context.Context, one *uuid.UUID) (int, error) {
	var n int
	err := r.db.RunTx(ctx, pg.TxOptions{IsoLevel: pgx.ReadCommitted}, func(ctx context.Context, tx pgx.Tx) error {
		var (
			rows pgx.Rows
			err  error
		)
		now := r.Now()
		if one != nil {
			rows, err = tx.Query(ctx, `SELECT `+outboxColumns+` FROM outbox
				WHERE id = $1 AND processed_at IS NULL FOR UPDATE SKIP LOCKED`, *one)
		} else {
			rows, err = tx.Query(ctx, `SELECT `+outboxColumns+` FROM outbox
				WHERE processed_at IS NULL AND available_at <= $1
				ORDER BY available_at, created_at, id LIMIT $2 FOR UPDATE SKIP LOCKED`, now, r.limit)
		}
		if err != nil {
			return fmt.Errorf("claim outbox: %w", err)
		}
		msgs, err := pgx.CollectRows(rows, scanOutbox)
		if err != nil {
			return fmt.Errorf("claim outbox: %w", err)
		}
		n = len(msgs)
		if n == 0 {
			return nil
		}
		for _, h := range r.handlers {
			if err := h.HandleOutbox(ctx, tx, msgs); err != nil {
				return err
			}
		}
		ids := make([]uuid.UUID, n)
		for i, m := range msgs {
			ids[i] = m.ID
		}
		if _, err := tx.Exec(ctx, `UPDATE outbox SET processed_at = $2, last_error = NULL WHERE id = ANY($1)`, ids, now); err != nil {
			return fmt.Errorf("mark outbox processed: %w", err)
		}
		return nil
	})
	return n, err
}

func scanOutbox(row pgx.CollectableRow) (OutboxMessage, error) {
	var (
		m            OutboxMessage
		owner, entry *uuid.UUID
		attempts     int32
	)
	if err := row.Scan(&m.ID, &m.Topic, &owner, &entry, &m.Payload, &m.CreatedAt, &attempts); err != nil {
		return m, err
	}
	if owner != nil {
		m.Owner = OwnerID(*owner)
	}
	if entry != nil {
		m.EntryID = EntryID(*entry)
	}
	m.Attempts = int(attempts)
	return m, nil
}

func (r *Relay) due(ctx context.Context) ([]uuid.UUID, error) {
	rows, err := r.db.Pool.Query(ctx, `SELECT id FROM outbox WHERE processed_at IS NULL AND available_at <= $1
		ORDER BY available_at, created_at, id LIMIT $2`, r.Now(), r.limit)
	if err != nil {
		return nil, fmt.Errorf("list outbox: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
}

// fail records a message's failure and when to try it again.
func (r *Relay) fail(ctx context.Context, id uuid.UUID, cause error) error {
	var attempts int32
	err := r.db.Pool.QueryRow(ctx, `SELECT attempts FROM outbox WHERE id = $1`, id).Scan(&attempts)
	if err != nil {
		return fmt.Errorf("outbox %s: %w", id, err)
	}
	msg := cause.Error()
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	_, err = r.db.Pool.Exec(ctx, `UPDATE outbox SET attempts = attempts + 1, last_error = $2, available_at = $3
		WHERE id = $1 AND processed_at IS NULL`, id, msg, r.Now().Add(relayBackoff(int(attempts))))
	if err != nil {
		return fmt.Errorf("outbox %s: record failure: %w", id, err)
	}
	return nil
}

// newOutboxID makes time-ordered ids (UUIDv7, monotonic within a process),
// so the messages one batch emits are relayed in the order they were
// emitted: thresholds 50, 80, 100 reach the app in that order.
func newOutboxID() uuid.UUID { return uuid.Must(uuid.NewV7()) }
