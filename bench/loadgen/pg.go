package main

import (
	"context"
	"fmt"
	"net/url"
	"regexp"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/jackc/pgx/v5"
)

// pgSettings are the server settings that decide what a commit costs.
type pgSettings struct {
	Version           string `json:"server_version"`
	Fsync             string `json:"fsync"`
	SynchronousCommit string `json:"synchronous_commit"`
	SharedBuffers     string `json:"shared_buffers"`
	MaxConnections    string `json:"max_connections"`
	Autovacuum        string `json:"autovacuum"`
}

// dbNamePattern keeps the name safe to splice into CREATE DATABASE.
var dbNamePattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// freshDatabase drops and creates name on the server adminURL points at,
// and returns the new database's URL and the server's settings.
func freshDatabase(ctx context.Context, adminURL, name string) (string, pgSettings, error) {
	var s pgSettings
	if !dbNamePattern.MatchString(name) {
		return "", s, fmt.Errorf("database name %q: use lower-case letters, digits and _", name)
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", s, fmt.Errorf("connect %s: %w", redactURL(adminURL), err)
	}
	defer conn.Close(ctx)
	for _, q := range []struct {
		name string
		dst  *string
	}{{"server_version", &s.Version}, {"fsync", &s.Fsync}, {"synchronous_commit", &s.SynchronousCommit},
		{"shared_buffers", &s.SharedBuffers}, {"max_connections", &s.MaxConnections}, {"autovacuum", &s.Autovacuum}} {
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", q.name).Scan(q.dst); err != nil {
			return "", s, fmt.Errorf("read setting %s: %w", q.name, err)
		}
	}
	ident := pgx.Identifier{name}.Sanitize()
	// FORCE ends the sessions of a ledgerd a crashed run left behind.
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		return "", s, fmt.Errorf("drop database %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return "", s, fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", s, fmt.Errorf("-database-url must be a postgres:// URL")
	}
	u.Path = "/" + name
	return u.String(), s, nil
}

// vacuumAnalyze does what autovacuum would have done by now: gather the
// statistics the planner needs (without them a batch's "= ANY($1)" over
// hundreds of wallets is planned as a sequential scan) and reclaim the
// dead versions of counter rows earlier scenarios updated. It runs before
// each scenario, untimed, so every scenario starts from the same kind of
// database whether or not the server runs autovacuum.
func vacuumAnalyze(ctx context.Context, db *pg.DB) error {
	// VACUUM refuses to run inside a transaction block; the simple
	// protocol sends it as a statement of its own.
	_, err := db.Pool.Exec(ctx, "VACUUM (ANALYZE)", pgx.QueryExecModeSimpleProtocol)
	return err
}

// dropDatabase removes the bench database (the smoke test's cleanup).
func dropDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// redactURL hides a password for logs and the report.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
