// Package pg is the project's database layer: the connection pool and the
// engine behind it (PostgreSQL or CockroachDB), transactions retried the
// way each engine needs, the UUID codec, and the classification of the
// database's errors into fault kinds.
package pg

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	crdbpgx "github.com/cockroachdb/cockroach-go/v2/crdb/crdbpgxv5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/creditledger/creditledger/fault"
)

// Engine is the SQL engine behind a connection.
type Engine int

const (
	Postgres Engine = iota
	Cockroach
)

func (e Engine) String() string {
	if e == Cockroach {
		return "cockroachdb"
	}
	return "postgresql"
}

// DB is a connection pool and the engine it talks to. The engine decides how
// transactions are retried (see RunTx).
type DB struct {
	Pool   *pgxpool.Pool
	Engine Engine
}

// Open connects and detects the engine.
//
// An empty url is refused rather than read as "the defaults of the
// environment" (pgx would connect to whatever PGHOST or the local socket
// says): a ledger never writes to a database nobody named.
func Open(ctx context.Context, url string) (*DB, error) {
	if url == "" {
		return nil, errors.New("pg: no database URL")
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	return OpenConfig(ctx, cfg)
}

// OpenConfig is Open with a parsed pool configuration.
func OpenConfig(ctx context.Context, cfg *pgxpool.Config) (*DB, error) {
	after := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		registerUUID(c.TypeMap())
		registerArrays(c.TypeMap())
		if after != nil {
			return after(ctx, c)
		}
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	var version string
	if err := pool.QueryRow(ctx, `SELECT version()`).Scan(&version); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	db := &DB{Pool: pool, Engine: Postgres}
	if strings.Contains(version, "CockroachDB") {
		db.Engine = Cockroach
	}
	return db, nil
}

// Close closes the pool.
func (db *DB) Close() { db.Pool.Close() }

// Retryable reports whether err means "run the whole transaction again":
// serialization failure (40001) and deadlock (40P01). The database chose a
// victim; nothing of the transaction survived.
func Retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && kindOfState(pgErr.Code) == fault.Retry
}

// TxOptions tune RunTx.
type TxOptions struct {
	// IsoLevel overrides the isolation level on PostgreSQL (default
	// SERIALIZABLE). CockroachDB always runs SERIALIZABLE.
	IsoLevel    pgx.TxIsoLevel
	MaxAttempts int           // default 30
	BaseBackoff time.Duration // default 2ms, doubled per attempt up to MaxBackoff, with full jitter
	MaxBackoff  time.Duration // default 250ms
	// OnRetry, if set, is told of each retried attempt (metrics, tests).
	OnRetry func(attempt int, err error)
}

// ErrTooManyRetries wraps the last retryable error once attempts run out.
var ErrTooManyRetries = errors.New("transaction retries exhausted")

// RunTx runs fn in a SERIALIZABLE transaction and retries the whole
// transaction on 40001/40P01 with jittered backoff.
//
// On PostgreSQL the COMMIT's error is the transaction's outcome: a
// serialization failure detected at COMMIT means nothing was written, and the
// transaction is run again. cockroach-go's ExecuteTx would hide such a failure
// on PostgreSQL (it treats RELEASE SAVEPOINT as the commit), so it is used only
// on CockroachDB, where its savepoint protocol is the documented retry path.
//
// fn may run more than once: it must not keep state across attempts.
func (db *DB) RunTx(ctx context.Context, opts TxOptions, fn func(context.Context, pgx.Tx) error) error {
	txo := pgx.TxOptions{IsoLevel: pgx.Serializable}
	if db.Engine == Cockroach {
		attempt := 0
		return crdbpgx.ExecuteTx(ctx, db.Pool, txo, func(tx pgx.Tx) error {
			attempt++
			if attempt > 1 && opts.OnRetry != nil {
				opts.OnRetry(attempt-1, nil)
			}
			return fn(ctx, tx)
		})
	}
	if opts.IsoLevel != "" {
		txo.IsoLevel = opts.IsoLevel
	}
	max := opts.MaxAttempts
	if max <= 0 {
		max = 30
	}
	base, ceil := opts.BaseBackoff, opts.MaxBackoff
	if base <= 0 {
		base = 2 * time.Millisecond
	}
	if ceil <= 0 {
		ceil = 250 * time.Millisecond
	}
	var err error
	for attempt := 1; attempt <= max; attempt++ {
		err = runOnce(ctx, db.Pool, txo, fn)
		if err == nil || !Retryable(err) {
			return err
		}
		if opts.OnRetry != nil {
			opts.OnRetry(attempt, err)
		}
		backoff := base << min(attempt-1, 16)
		if backoff > ceil {
			backoff = ceil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(rand.N(backoff) + time.Microsecond):
		}
	}
	return fmt.Errorf("%w after %d attempts: %w", ErrTooManyRetries, max, err)
}

func runOnce(ctx context.Context, pool *pgxpool.Pool, txo pgx.TxOptions, fn func(context.Context, pgx.Tx) error) error {
	tx, err := pool.BeginTx(ctx, txo)
	if err != nil {
		return err
	}
	if err := fn(ctx, tx); err != nil {
		// Rollback on a fresh context: a cancelled ctx must not leave the
		// connection mid-transaction.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = tx.Rollback(rctx)
		cancel()
		return err
	}
	return tx.Commit(ctx)
}
