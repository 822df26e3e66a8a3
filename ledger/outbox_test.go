package ledger

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// outboxTopic makes a topic of the test's own, so tests sharing the
// package's database relay only their rows.
func outboxTopic(t *testing.T) string { return "test." + t.Name() + "." + uuid.NewString()[:8] }

func insertOutbox(t *testing.T, db *pg.DB, topic string, n int) []uuid.UUID {
	t.Helper()
	var ids []uuid.UUID
	now := time.Now()
	for range n {
		id := newOutboxID()
		if _, err := db.Pool.Exec(context.Background(), `INSERT INTO outbox (id, topic, payload, created_at, available_at)
			VALUES ($1, $2, '{"n":1}', $3, $3)`, id, topic, now); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// collector keeps the messages of one topic it was handed.
type collector struct {
	topic string
	mu    sync.Mutex
	got   []uuid.UUID
	fail  map[uuid.UUID]bool
}

func (c *collector) HandleOutbox(_ context.Context, _ pgx.Tx, msgs []OutboxMessage) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var mine []uuid.UUID
	for _, m := range msgs {
		if m.Topic != c.topic {
			continue
		}
		if c.fail[m.ID] {
			return errors.New("handler refuses " + m.ID.String())
		}
		mine = append(mine, m.ID)
	}
	c.got = append(c.got, mine...)
	return nil
}

func TestRelayHandsOverInOrderOnce(t *testing.T) {
	e := newEnv(t, Options{})
	topic := outboxTopic(t)
	ids := insertOutbox(t, e.db, topic, 50)
	c := &collector{topic: topic}
	// Three relays at once, each claiming with SKIP LOCKED: every message
	// handed over once.
	var wg sync.WaitGroup
	for range 3 {
		r := NewRelay(e.db, nil, c)
		wg.Go(func() {
			for {
				n, err := r.RunOnce(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				if n == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	got := slices.Clone(c.got)
	slices.SortFunc(got, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	if !slices.Equal(got, ids) {
		t.Fatalf("handed over %d messages, want each of %d once", len(c.got), len(ids))
	}
	// One relay alone keeps the emit order.
	more := insertOutbox(t, e.db, topic, 10)
	c.got = nil
	if _, err := NewRelay(e.db, nil, c).RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.got, more) {
		t.Fatalf("order %v, want %v", c.got, more)
	}
}

func TestRelaySetsAsideAFailingMessage(t *testing.T) {
	e := newEnv(t, Options{})
	topic := outboxTopic(t)
	ids := insertOutbox(t, e.db, topic, 5)
	c := &collector{topic: topic, fail: map[uuid.UUID]bool{ids[2]: true}}
	r := NewRelay(e.db, nil, c)
	relayed := 0
	r.Relayed = func() { relayed++ }
	if _, err := r.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := slices.Delete(slices.Clone(ids), 2, 3)
	if !slices.Equal(c.got, want) || relayed != 1 {
		t.Fatalf("handed over %v (notified %d), want the four good ones %v", c.got, relayed, want)
	}
	var (
		attempts  int
		lastError string
		available time.Time
		processed *time.Time
	)
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT attempts, last_error, available_at, processed_at FROM outbox WHERE id = $1`,
		ids[2]).Scan(&attempts, &lastError, &available, &processed); err != nil {
		t.Fatal(err)
	}
	if attempts != 1 || lastError == "" || !available.After(time.Now()) || processed != nil {
		t.Fatalf("failed message: attempts %d, error %q, available %s, processed %v", attempts, lastError, available, processed)
	}
	// Once the handler takes it and its backoff has passed, it goes through.
	c.fail = nil
	r.Now = func() time.Time { return time.Now().Add(time.Hour) }
	c.got = nil
	if _, err := r.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.got, ids[2:3]) {
		t.Fatalf("after the backoff: %v", c.got)
	}
}
