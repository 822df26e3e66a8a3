// Package testdb gives each test binary (one per Go package) a PostgreSQL
// database of its own, cloned from a migrated template, so packages that run
// in parallel never see each other's rows.
//
// The template is named after the migrations' fingerprint: editing a
// migration builds a new one. It is built under a temporary name and renamed
// into place, so two packages racing to build it cannot both win.
package testdb

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	schema "github.com/creditledger/creditledger/sql"
)

// AdminURL is the server the test databases are made on. TEST_DATABASE_URL
// overrides it; it must name a role allowed to CREATE DATABASE.
func AdminURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// Main is called from a package's TestMain. It creates the package's
// database, stores its URL in *dsn, runs the tests and drops the database.
//
//	var dsn string
//	func TestMain(m *testing.M) { os.Exit(testdb.Main(m, &dsn)) }
//
// Each check runs on the database after the tests passed (the ledger's
// invariant verifier, typically); a failing check fails the package.
//
// With -short no database is made: the package's unit tests run, and the
// tests that need PostgreSQL skip (Require), so `go test -short` works on a
// machine with no database at all.
func Main(m *testing.M, dsn *string, checks ...func(ctx context.Context, url string) error) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	u, drop, err := Create(ctx, packageName())
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testdb: cannot create the test database: %v\n"+
			"testdb: the tests need PostgreSQL at %s (set TEST_DATABASE_URL, or run `make test`, which starts it)\n",
			err, redact(AdminURL()))
		return 1
	}
	*dsn = u
	code := m.Run()
	if code == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		for _, check := range checks {
			if err := check(ctx, u); err != nil {
				fmt.Fprintf(os.Stderr, "testdb: after the tests: %v\nFAIL\n", err)
				code = 1
			}
		}
		cancel()
	}
	if os.Getenv("TESTDB_KEEP") == "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := drop(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "testdb: drop: %v\n", err)
		}
		cancel()
	} else {
		fmt.Fprintf(os.Stderr, "testdb: kept %s\n", redact(u))
	}
	return code
}

// Require skips t when the package runs without a database (-short): a
// test that needs PostgreSQL calls it first.
func Require(t testing.TB, dsn string) {
	t.Helper()
	if dsn == "" {
		t.Skip("needs PostgreSQL: -short runs only the tests that need no database")
	}
}

// Create makes a new database from the migrated template and returns its URL
// and a function that drops it.
func Create(ctx context.Context, label string) (string, func(context.Context) error, error) {
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		return "", nil, fmt.Errorf("connect: %w", err)
	}
	defer admin.Close(ctx)

	dropOrphans(ctx, admin)
	fp, err := schema.Fingerprint()
	if err != nil {
		return "", nil, err
	}
	tmpl := "ledger_tmpl_" + fp
	for attempt := 0; ; attempt++ {
		if err := ensureTemplate(ctx, admin, tmpl); err != nil {
			return "", nil, fmt.Errorf("template: %w", err)
		}
		u, drop, err := create(ctx, admin, label, tmpl)
		// 3D000: the template went away between the two steps (another
		// checkout with other migrations cleaned up): build it again.
		if !isCode(err, "3D000") || attempt >= 3 {
			return u, drop, err
		}
	}
}

// CreateEmpty makes a new database with no tables at all, for tests of the
// migrator itself, and returns its URL and a function that drops it.
func CreateEmpty(ctx context.Context, label string) (string, func(context.Context) error, error) {
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		return "", nil, fmt.Errorf("connect: %w", err)
	}
	defer admin.Close(ctx)

	dropOrphans(ctx, admin)
	// template0, not the default template1: an administrator may have
	// added objects to template1, and this database must be truly empty.
	return create(ctx, admin, label, "template0")
}

// create makes a database named for the label and this process (so
// dropOrphans can recognize it once the process is gone) from tmpl.
func create(ctx context.Context, admin *pgx.Conn, label, tmpl string) (string, func(context.Context) error, error) {
	// PostgreSQL silently truncates names beyond 63 bytes, which would make
	// the URL below name a database that does not exist; keep the label short.
	l := sanitize(label)
	if len(l) > 24 {
		l = l[:24]
	}
	name := fmt.Sprintf("ledger_test_%s_%d_%d", l, os.Getpid(), rand.N(1_000_000_000))
	var err error
	for attempt := 0; ; attempt++ {
		_, err = admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{tmpl}.Sanitize())
		// 55006: another package is copying the same template at this moment.
		if err == nil || !isCode(err, "55006") || attempt > 50 {
			break
		}
		time.Sleep(time.Duration(50+attempt*20) * time.Millisecond)
	}
	if err != nil {
		return "", nil, fmt.Errorf("create %s: %w", name, err)
	}
	u, err := withDatabase(AdminURL(), name)
	if err != nil {
		return "", nil, err
	}
	drop := func(ctx context.Context) error {
		c, err := pgx.Connect(ctx, AdminURL())
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		return err
	}
	return u, drop, nil
}

func ensureTemplate(ctx context.Context, admin *pgx.Conn, tmpl string) error {
	var exists bool
	if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, tmpl).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	building := fmt.Sprintf("%s_b%d", tmpl, os.Getpid())
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{building}.Sanitize()); err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{building}.Sanitize()); err != nil {
		return err
	}
	u, err := withDatabase(AdminURL(), building)
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, u)
	if err != nil {
		return err
	}
	_, err = (&schema.Migrator{Pool: pool}).Migrate(ctx)
	pool.Close()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	_, err = admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{building}.Sanitize()+" RENAME TO "+pgx.Identifier{tmpl}.Sanitize())
	// Another package finished first; use theirs. Renamed at the same
	// instant, the catalog's unique index may say so (23505) instead.
	if isCode(err, "42P04") || isCode(err, "23505") {
		_, err = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{building}.Sanitize())
	}
	if err != nil {
		return err
	}
	// The template says when it was built, so that the cleanup below
	// spares the templates of other checkouts (other branches, other
	// migration sets) testing against the same server right now.
	if _, err := admin.Exec(ctx, "COMMENT ON DATABASE "+pgx.Identifier{tmpl}.Sanitize()+" IS "+
		quote(builtPrefix+time.Now().UTC().Format(time.RFC3339))); err != nil {
		return err
	}
	// Templates of older migration sets, built more than a day ago, are
	// dead weight now.
	rows, err := admin.Query(ctx, `SELECT datname, COALESCE(shobj_description(oid, 'pg_database'), '')
		FROM pg_database WHERE datname LIKE 'ledger\_tmpl\_%' AND datname <> $1`, tmpl)
	if err != nil {
		return nil
	}
	var old []string
	for rows.Next() {
		var n, comment string
		if rows.Scan(&n, &comment) != nil || strings.Contains(n, "_b") {
			continue
		}
		built, err := time.Parse(time.RFC3339, strings.TrimPrefix(comment, builtPrefix))
		if err != nil || time.Since(built) > 24*time.Hour {
			old = append(old, n)
		}
	}
	rows.Close()
	for _, n := range old {
		_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize())
	}
	return nil
}

// builtPrefix starts a template's comment, followed by when it was built.
const builtPrefix = "ledger test template built "

// quote is a SQL string literal (COMMENT takes no parameters).
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

var orphanName = regexp.MustCompile(`^ledger_test_.*_(\d+)_\d+$`)

// dropOrphans removes databases left by test processes that died before
// dropping them (their pid is gone).
func dropOrphans(ctx context.Context, admin *pgx.Conn) {
	rows, err := admin.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 'ledger\_test\_%'`)
	if err != nil {
		return
	}
	var dead []string
	for rows.Next() {
		var n string
		if rows.Scan(&n) != nil {
			continue
		}
		m := orphanName.FindStringSubmatch(n)
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); errors.Is(err, os.ErrNotExist) {
			dead = append(dead, n)
		}
	}
	rows.Close()
	for _, n := range dead {
		_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)")
	}
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

func withDatabase(raw, db string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("parse TEST_DATABASE_URL: %w", err)
	}
	u.Path = "/" + db
	return u.String(), nil
}

func packageName() string {
	wd, err := os.Getwd()
	if err != nil {
		return "pkg"
	}
	return filepath.Base(wd)
}

func sanitize(s string) string {
	s = strings.ToLower(s)
	return regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(s, "_")
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
