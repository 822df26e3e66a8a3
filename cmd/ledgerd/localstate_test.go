package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
)

// --help after a command prints the usage and does nothing: the database
// named here does not exist, so migrating would fail.
func TestSubcommandHelpDoesNotAct(t *testing.T) {
	env := func(k string) string {
		if k == "DATABASE_URL" {
			return "postgres://postgres@127.0.0.1:1/nothing?sslmode=disable"
		}
		return ""
	}
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"migrate", "--help"}, 0, "Usage: ledgerd"},
		{[]string{"migrate", "-h"}, 0, "Usage: ledgerd"},
		{[]string{"serve", "--help"}, 0, "Usage: ledgerd"},
		{[]string{"migrate", "now"}, 2, `unexpected argument "now"`},
		{[]string{"migrate", "--force"}, 2, `unexpected argument "--force"`},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, env, &out, &errb)
		if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.out) || strings.Contains(errb.String(), "ledgerd stopped") || strings.Contains(errb.String(), "starting ledgerd") {
			t.Errorf("%q: exit %d, want %d with %q\n%s%s", tc.args, code, tc.code, tc.out, out.String(), errb.String())
		}
	}
}

// An empty key table gets a generated admin key, kept in the data dir
// (0600) and printed once; the next start uses the kept key; a table with
// keys gets none.
func TestEnsureAdminKey(t *testing.T) {
	testdb.Require(t, dsn)
	ctx := context.Background()
	url, drop, err := testdb.Create(ctx, "adminkey")
	if err != nil {
		t.Fatal(err)
	}
	defer drop(context.Background())
	db, err := pg.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys := apikey.NewStore(db)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := filepath.Join(t.TempDir(), "data")

	var out bytes.Buffer
	if got, err := ensureAdminKey(ctx, keys, dir, log, &out); err != nil || got != "" {
		t.Fatalf("first start: %q %v", got, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, adminKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(b))
	if fi, _ := os.Stat(filepath.Join(dir, adminKeyFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("admin.key mode %v, want 0600", fi.Mode().Perm())
	}
	if !strings.Contains(out.String(), key) {
		t.Errorf("the key was not printed: %q", out.String())
	}
	if k, err := keys.Authenticate(ctx, key); err != nil || k.Scope != apikey.Admin {
		t.Fatalf("generated key: %+v %v", k, err)
	}

	out.Reset()
	if got, err := ensureAdminKey(ctx, keys, dir, log, &out); err != nil || got != key || out.Len() != 0 {
		t.Fatalf("second start: %q %v, printed %q; want the kept key, silently", got, err, out.String())
	}
	other := t.TempDir()
	if got, err := ensureAdminKey(ctx, keys, other, log, &out); err != nil || got != "" || out.Len() != 0 {
		t.Fatalf("table with keys: %q %v %q", got, err, out.String())
	}
	if _, err := os.Stat(filepath.Join(other, adminKeyFile)); err == nil {
		t.Error("a key file was written for a table that had keys")
	}
}

func TestWriteStateFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	for _, v := range []string{"postgres://a", "postgres://b"} {
		if err := writeStateFile(dir, databaseURLFile, v); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, databaseURLFile))
	if err != nil || string(b) != "postgres://b\n" {
		t.Fatalf("%q %v", b, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, databaseURLFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
}
