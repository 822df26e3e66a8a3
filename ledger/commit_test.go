package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// writeSkew makes the transaction tx fail at COMMIT with a serialization
// failure: tx reads what a second transaction writes and the second reads
// what tx writes, and the second commits first. PostgreSQL can only detect
// the cycle when tx commits.
func writeSkew(ctx context.Context, t testing.TB, db *pg.DB, tx pgx.Tx) error {
	t.Helper()
	if _, err := tx.Exec(ctx, `SELECT COUNT(*) FROM ssi_probe WHERE k = 1`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO ssi_probe (k) VALUES (2)`); err != nil {
		return err
	}
	return pgx.BeginTxFunc(ctx, db.Pool, pgx.TxOptions{IsoLevel: pgx.Serializable}, func(other pgx.Tx) error {
		if _, err := other.Exec(ctx, `SELECT COUNT(*) FROM ssi_probe WHERE k = 2`); err != nil {
			return err
		}
		_, err := other.Exec(ctx, `INSERT INTO ssi_probe (k) VALUES (1)`)
		return err
	})
}

func createProbe(t testing.TB, db *pg.DB) {
	t.Helper()
	if _, err := db.Pool.Exec(context.Background(), `CREATE TABLE IF NOT EXISTS ssi_probe (k INT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
}

// commitFailure records that a retry was caused by a 40001 raised by COMMIT.
type commitFailure struct {
	mu       sync.Mutex
	hookDone map[int]bool // attempts whose statements all succeeded
	failures []error
}

func (c *commitFailure) onRetry(_ int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failures = append(c.failures, err)
}

func assertCommitFailure(t *testing.T, c *commitFailure) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.failures) != 1 {
		t.Fatalf("retries: %v, want exactly one", c.failures)
	}
	var pgErr *pgconn.PgError
	if !errors.As(c.failures[0], &pgErr) || pgErr.Code != "40001" {
		t.Fatalf("retry cause %v, want SQLSTATE 40001", c.failures[0])
	}
	if !c.hookDone[1] {
		t.Fatal("attempt 1 failed before reaching COMMIT")
	}
	// PostgreSQL says where it found the cycle.
	if !strings.Contains(pgErr.Detail, "commit") {
		t.Logf("note: detail %q does not name the commit", pgErr.Detail)
	}
}

func TestRunTxRetriesSerializationFailureAtCommit(t *testing.T) {
	testdb.Require(t, dsn)
	ctx := context.Background()
	db, err := pg.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	createProbe(t, db)
	marker := uuid.NewString()
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS runtx_effects (marker TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	c := &commitFailure{hookDone: map[int]bool{}}
	attempts := 0
	err = db.RunTx(ctx, pg.TxOptions{OnRetry: c.onRetry}, func(ctx context.Context, tx pgx.Tx) error {
		attempts++
		if _, err := tx.Exec(ctx, `INSERT INTO runtx_effects (marker) VALUES ($1)`, marker); err != nil {
			return err
		}
		if attempts == 1 {
			if err := writeSkew(ctx, t, db, tx); err != nil {
				return fmt.Errorf("write skew setup: %w", err)
			}
		}
		c.mu.Lock()
		c.hookDone[attempts] = true
		c.mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	assertCommitFailure(t, c)
	if attempts != 2 {
		t.Fatalf("attempts = %d, want 2", attempts)
	}
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT COUNT(*) FROM runtx_effects WHERE marker = $1`, marker).Scan(&n); err != nil || n != 1 {
		t.Fatalf("effect written %d times (err %v), want once", n, err)
	}
}

// The poster treats the COMMIT's serialization failure as the batch's
// outcome: the whole batch runs again, and every op lands exactly once.
func TestPosterSurvivesSerializationFailureAtCommit(t *testing.T) {
	ctx := context.Background()
	c := &commitFailure{hookDone: map[int]bool{}}
	e := newEnv(t, Options{Shards: 1, MaxBatch: 100, Linger: 20 * time.Millisecond, Tx: pg.TxOptions{OnRetry: c.onRetry}})
	createProbe(t, e.db)
	owner := OwnerID(uuid.New())
	grant := e.openAccount(t, owner, "grant")
	// Armed only for the batch of transfers below. Setting the hook before
	// Enqueue is ordered before the shard reads it by the queue's channel.
	e.l.opts.beforeCommit = func(ctx context.Context, tx pgx.Tx, attempt int) error {
		if attempt == 1 {
			if err := writeSkew(ctx, t, e.db, tx); err != nil {
				return err
			}
		}
		c.mu.Lock()
		c.hookDone[attempt] = true
		c.mu.Unlock()
		return nil
	}

	const n = 20
	var pend []*Pending
	for i := 0; i < n; i++ {
		p, err := e.l.Enqueue(ctx, &TransferOp{IdempotencyKey: fmt.Sprintf("skew-%d-%s", i, owner), Owner: owner,
			Postings: Postings(Transfer{Debit: e.funding.ID, Credit: grant.ID, Amount: MustAmount("1.5")})})
		if err != nil {
			t.Fatal(err)
		}
		pend = append(pend, p)
	}
	for _, p := range pend {
		if out, err := p.Wait(ctx); err != nil || out.Status != StatusPosted || out.Replayed {
			t.Fatalf("%+v %v", out, err)
		}
	}
	assertCommitFailure(t, c)
	acc, err := e.l.Account(ctx, grant.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !acc.Available().Equal(MustAmount("30")) {
		t.Fatalf("balance %s, want 30 (20 × 1.5, none lost or doubled)", acc.Available())
	}
	var entries int
	if err := e.db.Pool.QueryRow(ctx, `SELECT COUNT(*) FROM ledger_entries WHERE idempotency_key LIKE $1`, "skew-%-"+owner.String()).Scan(&entries); err != nil || entries != n {
		t.Fatalf("%d entries (err %v), want %d", entries, err, n)
	}
	mustVerify(t, e.db)
}
