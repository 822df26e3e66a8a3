// Package sql holds the schema: embedded migrations applied in order, each a
// single statement valid on PostgreSQL 15+ and CockroachDB 23+.
//
// Migrations are serialized by a row in schema_lock rather than an advisory
// lock, because CockroachDB has no advisory locks. A holder that dies leaves
// the row behind; it is taken over once it is older than the lease.
package sql

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var files embed.FS

// Migration is one numbered schema change.
type Migration struct {
	Version string // the file name without ".sql", e.g. "0001_ledger_accounts"
	SQL     string
}

// Checksum identifies the migration's text, so an edited, already applied
// migration is noticed instead of silently diverging.
func (m Migration) Checksum() string {
	sum := sha256.Sum256([]byte(m.SQL))
	return hex.EncodeToString(sum[:])
}

// Migrations returns every embedded migration in the order it is applied.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(files, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		b, err := files.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", e.Name(), err)
		}
		out = append(out, Migration{Version: strings.TrimSuffix(e.Name(), ".sql"), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Fingerprint is a digest of all migrations; test helpers name migrated
// template databases after it.
func Fingerprint() (string, error) {
	ms, err := Migrations()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, m := range ms {
		fmt.Fprintf(h, "%s\n%s\n", m.Version, m.SQL)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// ErrChecksumMismatch reports an applied migration whose text has changed.
var ErrChecksumMismatch = errors.New("applied migration was edited")

// Migrator applies migrations.
type Migrator struct {
	Pool   *pgxpool.Pool
	Log    *slog.Logger
	Lease  time.Duration // how old a lock row must be before another process takes it over
	Holder string        // written into the lock row, for humans reading it
}

const bootstrapLock = `CREATE TABLE IF NOT EXISTS schema_lock (
    id INT PRIMARY KEY,
    holder TEXT NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL
)`

const bootstrapVersions = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version TEXT PRIMARY KEY,
    checksum TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL
)`

// Migrate applies every pending migration and returns how many it applied.
func (m *Migrator) Migrate(ctx context.Context) (int, error) {
	log := m.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lease := m.Lease
	if lease <= 0 {
		lease = 5 * time.Minute
	}
	holder := m.Holder
	if holder == "" {
		host, _ := os.Hostname()
		holder = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	for _, stmt := range []string{bootstrapLock, bootstrapVersions} {
		if err := execIgnoringDuplicate(ctx, m.Pool, stmt); err != nil {
			return 0, fmt.Errorf("bootstrap schema tables: %w", err)
		}
	}
	if err := m.lock(ctx, holder, lease); err != nil {
		return 0, err
	}
	defer func() {
		// A fresh context: the lock must be released even if ctx was cancelled.
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := m.Pool.Exec(rctx, `DELETE FROM schema_lock WHERE id = 1 AND holder = $1`, holder); err != nil {
			log.Warn("release migration lock", "err", err)
		}
	}()

	applied := map[string]string{}
	rows, err := m.Pool.Query(ctx, `SELECT version, checksum FROM schema_migrations`)
	if err != nil {
		return 0, fmt.Errorf("read applied migrations: %w", err)
	}
	for rows.Next() {
		var v, c string
		if err := rows.Scan(&v, &c); err != nil {
			rows.Close()
			return 0, fmt.Errorf("scan applied migration: %w", err)
		}
		applied[v] = c
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read applied migrations: %w", err)
	}

	ms, err := Migrations()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, mig := range ms {
		if sum, ok := applied[mig.Version]; ok {
			if sum != mig.Checksum() {
				return n, fmt.Errorf("%s: %w", mig.Version, ErrChecksumMismatch)
			}
			continue
		}
		// One statement per transaction: CockroachDB runs schema changes
		// asynchronously and mixing several in one transaction is fragile.
		err := pgx.BeginFunc(ctx, m.Pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, mig.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, checksum, applied_at) VALUES ($1, $2, now())`,
				mig.Version, mig.Checksum())
			return err
		})
		if err != nil {
			return n, fmt.Errorf("apply %s: %w", mig.Version, err)
		}
		log.Info("applied migration", "version", mig.Version)
		n++
	}
	return n, nil
}

// lock takes the lock row, waiting for a live holder and taking over a stale one.
func (m *Migrator) lock(ctx context.Context, holder string, lease time.Duration) error {
	for {
		tag, err := m.Pool.Exec(ctx, `INSERT INTO schema_lock (id, holder, acquired_at) VALUES (1, $1, now())
			ON CONFLICT (id) DO NOTHING`, holder)
		if err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		if tag.RowsAffected() == 1 {
			return nil
		}
		// Someone holds it. Take it over only if the lease ran out.
		tag, err = m.Pool.Exec(ctx, `UPDATE schema_lock SET holder = $1, acquired_at = now()
			WHERE id = 1 AND acquired_at < now() - $2::INTERVAL`, holder, fmt.Sprintf("%d seconds", int(lease.Seconds())))
		if err != nil {
			return fmt.Errorf("take over stale migration lock: %w", err)
		}
		if tag.RowsAffected() == 1 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for migration lock: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// execIgnoringDuplicate runs a CREATE … IF NOT EXISTS. Two processes racing on
// it can still collide on PostgreSQL's catalog, which means the table now
// exists: unique_violation (23505) on pg_type's index, duplicate_table
// (42P07), or duplicate_object (42710) when the table's row type is seen
// first (TestMigrateConcurrently caught that one).
func execIgnoringDuplicate(ctx context.Context, pool *pgxpool.Pool, stmt string) error {
	_, err := pool.Exec(ctx, stmt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "42P07" || pgErr.Code == "42710") {
		return nil
	}
	return err
}
