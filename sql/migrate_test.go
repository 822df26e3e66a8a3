package sql_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/creditledger/creditledger/internal/testdb"
	schema "github.com/creditledger/creditledger/sql"
)

// emptyDB returns a pool on a new database with no tables, dropped when the
// test ends.
func emptyDB(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL: -short runs only the tests that need no database")
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	u, drop, err := testdb.CreateEmpty(ctx, "sql_migrate")
	if err != nil {
		t.Fatalf("create empty database: %v (the tests need PostgreSQL; set TEST_DATABASE_URL or run `make test`)", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := drop(ctx); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	return newPool(t, u), u
}

func newPool(t *testing.T, u string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	// Registered after the database's drop, so it runs before it.
	t.Cleanup(pool.Close)
	return pool
}

func migrations(t *testing.T) []schema.Migration {
	t.Helper()
	ms, err := schema.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func count(t *testing.T, pool *pgxpool.Pool, query string, args ...any) int {
	t.Helper()
	var n int
	// Its own context: callers check state after a deliberately expired one.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pool.QueryRow(ctx, query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestMigrateAppliesAllOnce(t *testing.T) {
	t.Parallel()
	pool, _ := emptyDB(t)
	ctx := t.Context()
	want := len(migrations(t))

	m := &schema.Migrator{Pool: pool, Holder: "test"}
	n, err := m.Migrate(ctx)
	if err != nil {
		t.Fatalf("first Migrate: %v", err)
	}
	if n != want {
		t.Fatalf("first Migrate applied %d, want %d", n, want)
	}
	n, err = m.Migrate(ctx)
	if err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if n != 0 {
		t.Fatalf("second Migrate applied %d, want 0", n)
	}
	if got := count(t, pool, `SELECT count(*) FROM schema_migrations`); got != want {
		t.Fatalf("schema_migrations has %d rows, want %d", got, want)
	}
	if got := count(t, pool, `SELECT count(*) FROM schema_lock`); got != 0 {
		t.Fatalf("lock row left behind: %d rows", got)
	}
}

// Several ledgerd processes starting together against a new database must
// apply each migration exactly once between them, and none may fail.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	_, u := emptyDB(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	want := len(migrations(t))

	const procs = 5
	var (
		wg      sync.WaitGroup
		applied [procs]int
		errs    [procs]error
	)
	for i := range procs {
		// A pool each, as separate processes would have.
		m := &schema.Migrator{Pool: newPool(t, u), Holder: fmt.Sprintf("proc-%d", i)}
		wg.Go(func() { applied[i], errs[i] = m.Migrate(ctx) })
	}
	wg.Wait()

	total := 0
	for i := range procs {
		if errs[i] != nil {
			t.Errorf("migrator %d: %v", i, errs[i])
		}
		total += applied[i]
	}
	if total != want {
		t.Errorf("migrators applied %v = %d in all, want %d", applied, total, want)
	}
	pool := newPool(t, u)
	if got := count(t, pool, `SELECT count(*) FROM schema_migrations`); got != want {
		t.Errorf("schema_migrations has %d rows, want %d", got, want)
	}
	if got := count(t, pool, `SELECT count(DISTINCT version) FROM schema_migrations`); got != want {
		t.Errorf("schema_migrations has %d distinct versions, want %d", got, want)
	}
	if got := count(t, pool, `SELECT count(*) FROM schema_lock`); got != 0 {
		t.Errorf("lock row left behind: %d rows", got)
	}
}

// Each case starts from a fully migrated database, changes something, and
// runs Migrate again.
func TestMigrateOnMigratedDatabase(t *testing.T) {
	tests := []struct {
		name    string
		setup   string // SQL run before Migrate
		lease   time.Duration
		timeout time.Duration
		wantErr error // nil: Migrate must succeed and apply nothing
		// check runs after Migrate; it sees the database's state.
		check func(t *testing.T, pool *pgxpool.Pool)
	}{
		{
			name: "lock row older than the lease is taken over",
			// A holder that died an hour ago.
			setup:   `INSERT INTO schema_lock (id, holder, acquired_at) VALUES (1, 'dead', now() - INTERVAL '1 hour')`,
			lease:   time.Minute,
			timeout: 20 * time.Second,
			check: func(t *testing.T, pool *pgxpool.Pool) {
				if got := count(t, pool, `SELECT count(*) FROM schema_lock`); got != 0 {
					t.Errorf("stale lock row still there (%d rows): it was not taken over and released", got)
				}
			},
		},
		{
			name:    "live lock row makes Migrate wait until ctx expires",
			setup:   `INSERT INTO schema_lock (id, holder, acquired_at) VALUES (1, 'alive', now())`,
			lease:   time.Hour,
			timeout: time.Second,
			wantErr: context.DeadlineExceeded,
			check: func(t *testing.T, pool *pgxpool.Pool) {
				// The waiter must not release a lock it never held.
				if got := count(t, pool, `SELECT count(*) FROM schema_lock WHERE holder = 'alive'`); got != 1 {
					t.Errorf("live holder's lock row gone: %d rows", got)
				}
			},
		},
		{
			name: "edited applied migration is refused",
			setup: `UPDATE schema_migrations SET checksum = 'edited'
				WHERE version = (SELECT min(version) FROM schema_migrations)`,
			timeout: 20 * time.Second,
			wantErr: schema.ErrChecksumMismatch,
			check: func(t *testing.T, pool *pgxpool.Pool) {
				if got := count(t, pool, `SELECT count(*) FROM schema_lock`); got != 0 {
					t.Errorf("lock row left behind after the error: %d rows", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool, _ := emptyDB(t)
			if _, err := (&schema.Migrator{Pool: pool, Holder: "setup"}).Migrate(t.Context()); err != nil {
				t.Fatalf("initial Migrate: %v", err)
			}
			if _, err := pool.Exec(t.Context(), tt.setup); err != nil {
				t.Fatalf("setup: %v", err)
			}

			ctx, cancel := context.WithTimeout(t.Context(), tt.timeout)
			defer cancel()
			start := time.Now()
			n, err := (&schema.Migrator{Pool: pool, Lease: tt.lease, Holder: "test"}).Migrate(ctx)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("Migrate: %v", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("Migrate error = %v, want one wrapping %v", err, tt.wantErr)
			case tt.wantErr == nil && n != 0:
				t.Fatalf("Migrate applied %d, want 0", n)
			}
			if errors.Is(tt.wantErr, context.DeadlineExceeded) && time.Since(start) < tt.timeout {
				t.Fatalf("Migrate gave up after %s, before the %s deadline", time.Since(start), tt.timeout)
			}
			tt.check(t, pool)
		})
	}
}
