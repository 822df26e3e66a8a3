package main

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/creditledger/creditledger/internal/config"
)

// The files ledgerd writes in its data dir (cmd/ledgerd/localstate.go).
const (
	databaseURLFile = "database.url"
	natsURLFile     = "nats.url"
)

// databaseURL is DATABASE_URL, else the one ledgerd last used from this
// data dir, else the local default.
func databaseURL(cfg config.Config) string {
	if cfg.DatabaseURL != "" {
		return cfg.DatabaseURL
	}
	if u := readStateFile(cfg.DataDir, databaseURLFile); u != "" {
		return u
	}
	return defaultDatabaseURL
}

// natsURL is NATS_URL, else the server ledgerd last used from this data
// dir (its embedded one, perhaps on a fallback port), else the embedded
// server's default address.
func natsURL(cfg config.Config) string {
	if cfg.NATSURL != "" {
		return cfg.NATSURL
	}
	if u := readStateFile(cfg.DataDir, natsURLFile); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

func readStateFile(dir, name string) string {
	if dir == "" {
		dir = "./data"
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// redact hides a URL's password for messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
