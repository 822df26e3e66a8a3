package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/creditledger/creditledger/apikey"
)

// The files ledgerd leaves in its data dir so that ledgerctl, run in the
// same directory with no environment, finds what ledgerd used: the
// database (which `make run` may have made on a project-local PostgreSQL),
// the NATS server (which may be the embedded one, on a fallback port) and
// the admin key ledgerd generated.
const (
	databaseURLFile = "database.url"
	natsURLFile     = "nats.url"
	adminKeyFile    = "admin.key"
)

// writeStateFile replaces dir/name with content, readable by the owner
// only (a database URL may hold a password).
func writeStateFile(dir, name, content string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(content + "\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, name))
}

// rememberState writes a state file, and only warns when it cannot: the
// server works without it, only ledgerctl's defaults do not.
func rememberState(log *slog.Logger, dir, name, content string) {
	if err := writeStateFile(dir, name, content); err != nil {
		log.Warn("could not write "+name+" in the data dir; ledgerctl will need the setting in its environment", "err", err)
	}
}

// ensureAdminKey gives a ledger with no key at all an admin key, so that
// `bin/ledgerd` started by hand is usable as `make run` makes it: with
// LEDGER_ADMIN_KEY unset, the key kept in <data dir>/admin.key (the file
// `make run` uses too) is installed, or a new one is generated, kept there
// (0600) and printed once. A key table that has keys is left alone.
func ensureAdminKey(ctx context.Context, keys *apikey.Store, dataDir string, log *slog.Logger, out io.Writer) (string, error) {
	path := filepath.Join(dataDir, adminKeyFile)
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b)), nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	b := make([]byte, 32)
	rand.Read(b) // never fails: crypto/rand aborts the program if it cannot read
	key := "ledger_dev_admin_" + hex.EncodeToString(b)
	created, err := keys.BootstrapAdmin(ctx, key)
	if err != nil || !created {
		return "", err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", err
	}
	// O_EXCL: a `make run` writing the file at the same moment wins, and
	// its key is the one installed next start; this one still works.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, err = f.WriteString(key + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		log.Warn("the generated admin key could not be kept in the data dir: note it now", "file", path, "err", err)
	}
	fmt.Fprintf(out, "admin key: %s  (generated: the key table was empty; kept in %s)\n", key, path)
	log.Info("generated the first admin key", "file", path)
	return "", nil
}

// subcommandArgs checks what follows the command: --help or -h prints the
// usage and does nothing else (`ledgerd migrate --help` must not migrate);
// anything else is a mistake (exit 2). done is false when there is nothing
// after the command.
func subcommandArgs(args []string, stdout, stderr io.Writer) (code int, done bool) {
	if len(args) < 2 {
		return 0, false
	}
	for _, a := range args[1:] {
		if a == "-h" || a == "--help" || a == "-help" {
			fmt.Fprint(stdout, usage())
			return 0, true
		}
	}
	fmt.Fprintf(stderr, "ledgerd: unexpected argument %q\n\n%s", args[1], usage())
	return 2, true
}
