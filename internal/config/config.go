// Package config reads ledgerd's settings from environment variables.
//
// Every variable is declared once, in vars, with its default, its help line
// and how it is parsed: Load and Usage both walk that table, so the help text
// cannot drift from what is actually read.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/creditledger/creditledger/internal/secretbox"
)

// Config is ledgerd's configuration.
type Config struct {
	// DatabaseURL is empty when the variable is unset; the caller decides
	// what to do then (`make run` starts PostgreSQL via
	// scripts/ensure-postgres.sh and sets it).
	DatabaseURL string
	// NATSURL is empty when ledgerd should run its own embedded NATS server.
	NATSURL             string
	DataDir             string
	HTTPAddr            string
	AdminKey            string
	NATSSubjectPrefix   string
	NATSStream          string
	NATSWorkers         int
	NATSMaxDeliveries   int
	EmbeddedNATSAddr    string
	LogLevel            slog.Level
	LogFormat           string // "text" or "json"
	BodyLimitBytes      int
	PosterShards        int
	PosterMaxBatch      int
	PosterLinger        time.Duration
	WebhookAllowPrivate bool
	PprofAddr           string
	PGIsolation         string // "serializable" or "repeatable_read"
	InvoiceSeller       string // the seller printed on HTML invoices
	// EncryptionKey is LEDGER_ENCRYPTION_KEY decoded: nil when unset, else
	// secretbox.KeySize bytes.
	EncryptionKey []byte
	// RunwayAlertDays: wallet.runway_low fires when the credits would run
	// out within this many days (0: never).
	RunwayAlertDays int
	// CORSOrigins may call the API from a browser (nil: none; "*": any).
	CORSOrigins []string
	// AnalyzeInterval: how often ledgerd looks for tables with missing or
	// stale statistics and analyzes them (pg.KeepStatistics); 0: never.
	AnalyzeInterval time.Duration
	// BalanceCacheMaxAge: how long a wallet balance may be answered from
	// memory after the instant it was true (wallet.BalanceCache); 0: no
	// cache, every balance is read from the database.
	BalanceCacheMaxAge time.Duration
}

// variable is one environment variable: its name, its default (as the text
// a user would write), one line of help, and how it lands in Config.
type variable struct {
	name  string
	def   string
	help  string
	parse func(c *Config, v string) error
}

// vars is the one list of variables. A function rather than a package-level
// slice so there is no package-level mutable state.
func vars() []variable {
	return []variable{
		{"DATABASE_URL", "", "PostgreSQL/CockroachDB URL; unset: `make run` starts a local PostgreSQL and sets it",
			func(c *Config, v string) error { c.DatabaseURL = v; return nil }},
		{"NATS_URL", "", "NATS server URL(s); unset: run an embedded NATS server with JetStream",
			func(c *Config, v string) error { c.NATSURL = v; return nil }},
		{"LEDGER_DATA_DIR", "./data", "directory for local state (embedded NATS store, generated admin key)",
			func(c *Config, v string) error { c.DataDir = v; return nil }},
		{"LEDGER_HTTP_ADDR", ":8080", "host:port the HTTP API listens on",
			func(c *Config, v string) error { return hostPort(&c.HTTPAddr, v) }},
		{"LEDGER_ADMIN_KEY", "", "admin API key installed on first start when no keys exist; at least 32 characters, 8 of them distinct, and 128 bits by length × log2(distinct characters)",
			sensitive(func(c *Config, v string) error { return adminKey(&c.AdminKey, v) })},
		{"LEDGER_ENCRYPTION_KEY", "", "32 random bytes as 64 hex digits or base64 (`openssl rand -hex 32`); set: webhook secrets are stored AES-256-GCM encrypted",
			sensitive(func(c *Config, v string) error { return encryptionKey(&c.EncryptionKey, v) })},
		{"LEDGER_NATS_SUBJECT_PREFIX", "ledger.events", "usage events are consumed from <prefix>.<customer_id>",
			func(c *Config, v string) error { return subjectPrefix(&c.NATSSubjectPrefix, v) }},
		{"LEDGER_NATS_STREAM", "LEDGER_EVENTS", "JetStream stream holding usage events (created if missing)",
			func(c *Config, v string) error { return streamName(&c.NATSStream, v) }},
		{"LEDGER_NATS_WORKERS", "8", "concurrent JetStream fetch loops (1,000 events each) feeding the poster",
			func(c *Config, v string) error { return intIn(&c.NATSWorkers, v, 1, 256) }},
		{"LEDGER_NATS_MAX_DELIVERIES", "10", "deliveries of a usage event failing for an unknown reason before it is parked (listed in GET /v1/events/rejected, code parked); an unreachable database never counts",
			func(c *Config, v string) error { return intIn(&c.NATSMaxDeliveries, v, 2, 10000) }},
		{"LEDGER_EMBEDDED_NATS_ADDR", "127.0.0.1:4222", "host:port of the embedded NATS server (an ephemeral port if busy)",
			func(c *Config, v string) error { return hostPort(&c.EmbeddedNATSAddr, v) }},
		{"LEDGER_LOG_LEVEL", "info", "debug, info, warn or error",
			func(c *Config, v string) error { return logLevel(&c.LogLevel, v) }},
		{"LEDGER_LOG_FORMAT", "text", "text or json",
			func(c *Config, v string) error { return oneOf(&c.LogFormat, v, "text", "json") }},
		{"LEDGER_BODY_LIMIT_BYTES", "5242880", "largest HTTP request body accepted, in bytes (fits 1,000 events of the 4 KiB maximum)",
			func(c *Config, v string) error { return intIn(&c.BodyLimitBytes, v, 1, 1<<30) }},
		// Twice the CPUs: each shard is a concurrent transaction, and on 2
		// cores 4 shards commit 60% more debits than 8 (BENCHMARKS.md).
		{"LEDGER_POSTER_SHARDS", strconv.Itoa(2 * runtime.GOMAXPROCS(0)), "ledger poster goroutines; wallets are hashed onto them (default: twice GOMAXPROCS, the CPUs this process may use)",
			func(c *Config, v string) error { return intIn(&c.PosterShards, v, 1, 1024) }},
		{"LEDGER_POSTER_MAX_BATCH", "1000", "most operations the poster commits in one transaction",
			func(c *Config, v string) error { return intIn(&c.PosterMaxBatch, v, 1, 100000) }},
		{"LEDGER_POSTER_LINGER", "2ms", "how long the poster waits to fill a batch (Go duration)",
			func(c *Config, v string) error { return durationIn(&c.PosterLinger, v, 0, 10*time.Second) }},
		{"LEDGER_ANALYZE_INTERVAL", "1m", "how often to ANALYZE tables whose statistics are missing, or stale while autovacuum is off (PostgreSQL; 0: never)",
			func(c *Config, v string) error { return durationIn(&c.AnalyzeInterval, v, 0, 24*time.Hour) }},
		{"LEDGER_BALANCE_CACHE_MAX_AGE", "30s", "balances are answered from a per-process cache of up to 100,000 wallets, updated at each commit and invalidated across processes over NATS (a lost invalidation is noticed at its sender's next message and empties the cache); an entry is answered at most this long after the instant it was true, the bound on staleness when another process commits while cut off from NATS (0 to 1m; 0: no cache)",
			func(c *Config, v string) error { return durationIn(&c.BalanceCacheMaxAge, v, 0, time.Minute) }},
		{"LEDGER_PG_ISOLATION", "repeatable_read", "isolation of poster transactions on PostgreSQL: repeatable_read or serializable (see ARCHITECTURE.md; CockroachDB is always serializable)",
			func(c *Config, v string) error { return oneOf(&c.PGIsolation, v, "serializable", "repeatable_read") }},
		{"LEDGER_WEBHOOK_ALLOW_PRIVATE", "false", "allow webhook endpoints on private/loopback addresses (for development)",
			func(c *Config, v string) error { return boolean(&c.WebhookAllowPrivate, v) }},
		{"LEDGER_INVOICE_SELLER", "CreditLedger", "the seller's name printed on HTML invoices (at most 200 characters)",
			func(c *Config, v string) error {
				if len(v) > 200 || !utf8.ValidString(v) {
					return errors.New("at most 200 bytes of UTF-8")
				}
				c.InvoiceSeller = v
				return nil
			}},
		{"LEDGER_PPROF_ADDR", "", "serve Go's /debug/pprof on this host:port (off when empty; keep it on loopback)",
			func(c *Config, v string) error {
				if v == "" {
					return nil
				}
				return hostPort(&c.PprofAddr, v)
			}},
		{"LEDGER_RUNWAY_ALERT_DAYS", "3", "send wallet.runway_low when a wallet's credits would run out within this many days at its last 7 days' burn rate (0 to 365; 0: never)",
			func(c *Config, v string) error { return intIn(&c.RunwayAlertDays, v, 0, 365) }},
		{"LEDGER_CORS_ORIGINS", "", "comma-separated origins (https://app.example.com) whose pages may call the API from a browser, with portal tokens; * for any; none when empty",
			func(c *Config, v string) error { return origins(&c.CORSOrigins, v) }},
	}
}

// origins reads a comma-separated list of web origins: scheme, host and
// optional port, nothing else, as a browser sends them in Origin.
func origins(dst *[]string, v string) error {
	*dst = nil
	for _, o := range strings.Split(v, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if o == "*" {
			*dst = append(*dst, o)
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("%q is not an origin like https://app.example.com", o)
		}
		*dst = append(*dst, u.Scheme+"://"+u.Host)
	}
	return nil
}

// Load reads the configuration through getenv (os.Getenv in production).
// An empty variable counts as unset. Every invalid variable is reported, each
// error naming its variable.
func Load(getenv func(string) string) (Config, error) {
	var c Config
	var errs []error
	for _, v := range vars() {
		val := getenv(v.name)
		if val == "" {
			val = v.def
		}
		err := v.parse(&c, val)
		var secret sensitiveError
		switch {
		case errors.As(err, &secret):
			errs = append(errs, fmt.Errorf("%s: %w", v.name, err))
		case err != nil:
			errs = append(errs, fmt.Errorf("%s=%q: %w", v.name, val, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}

// sensitiveError is the error of a variable whose value is a secret: Load
// names the variable but does not quote its value, which would put the
// secret in the log of a failed start.
type sensitiveError struct{ err error }

func (e sensitiveError) Error() string { return e.err.Error() }
func (e sensitiveError) Unwrap() error { return e.err }

// sensitive marks the variable parse reads as a secret.
func sensitive(parse func(c *Config, v string) error) func(c *Config, v string) error {
	return func(c *Config, v string) error {
		if err := parse(c, v); err != nil {
			return sensitiveError{err}
		}
		return nil
	}
}

// Usage is the help text listing every variable, its default and meaning.
func Usage() string {
	var b strings.Builder
	b.WriteString("ledgerd is configured with environment variables (empty counts as unset):\n\n")
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  VARIABLE\tDEFAULT\tMEANING")
	for _, v := range vars() {
		def := v.def
		if def == "" {
			def = "(unset)"
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\n", v.name, def, v.help)
	}
	w.Flush()
	return b.String()
}

// LogValue keeps secrets out of logs when a Config is logged whole.
func (c Config) LogValue() slog.Value {
	key, encKey := "", ""
	if c.AdminKey != "" {
		key = "(set)"
	}
	if c.EncryptionKey != nil {
		encKey = "(set)"
	}
	return slog.GroupValue(
		slog.String("database_url", redactURL(c.DatabaseURL)),
		slog.String("nats_url", redactURL(c.NATSURL)),
		slog.String("data_dir", c.DataDir),
		slog.String("http_addr", c.HTTPAddr),
		slog.String("admin_key", key),
		slog.String("encryption_key", encKey),
		slog.String("nats_subject_prefix", c.NATSSubjectPrefix),
		slog.String("nats_stream", c.NATSStream),
		slog.Int("nats_max_deliveries", c.NATSMaxDeliveries),
		slog.String("embedded_nats_addr", c.EmbeddedNATSAddr),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("log_format", c.LogFormat),
		slog.Int("body_limit_bytes", c.BodyLimitBytes),
		slog.Int("poster_shards", c.PosterShards),
		slog.Int("poster_max_batch", c.PosterMaxBatch),
		slog.Duration("poster_linger", c.PosterLinger),
		slog.Duration("analyze_interval", c.AnalyzeInterval),
		slog.Duration("balance_cache_max_age", c.BalanceCacheMaxAge),
		slog.Bool("webhook_allow_private", c.WebhookAllowPrivate),
		slog.String("pprof_addr", c.PprofAddr),
		slog.String("pg_isolation", c.PGIsolation),
		slog.Int("runway_alert_days", c.RunwayAlertDays),
		slog.String("cors_origins", strings.Join(c.CORSOrigins, ",")),
	)
}

func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		// A key=value DSN or a list of URLs: it may hold a password
		// anywhere, so show nothing of it.
		return "(set)"
	}
	return u.Redacted()
}

// The admin key rule: long enough, and not a short pattern repeated. A key
// cannot be measured for randomness, so its entropy is estimated as its
// length times log2 of the number of distinct characters in it: the most an
// attacker who knew the characters used would have to search. The estimate
// is generous to repetitive keys ("abab…" of 128 characters passes the bits
// test), hence the distinct-character floor too. `make run`'s
// ledger_dev_admin_ and 64 hex digits has about 380 bits; a key made by
// `openssl rand -hex 32` or `-base64 32` passes.
const (
	minAdminKeyLen      = 32
	minAdminKeyDistinct = 8
	minAdminKeyBits     = 128
)

func adminKey(dst *string, v string) error {
	if v == "" {
		return nil // unset: no key is installed
	}
	n, distinct := keyShape(v)
	switch bits := float64(n) * math.Log2(float64(distinct)); {
	case n < minAdminKeyLen:
		return fmt.Errorf("too short: %d characters, want at least %d (e.g. `openssl rand -hex 32`)", n, minAdminKeyLen)
	case distinct < minAdminKeyDistinct:
		return fmt.Errorf("too repetitive: %d distinct characters, want at least %d", distinct, minAdminKeyDistinct)
	case bits < minAdminKeyBits:
		return fmt.Errorf("too little entropy: about %.0f bits (%d characters × log2(%d distinct)), want at least %d",
			bits, n, distinct, minAdminKeyBits)
	}
	*dst = v
	return nil
}

// keyShape returns the length of s in characters and how many distinct
// characters it has.
func keyShape(s string) (n, distinct int) {
	seen := map[rune]bool{}
	for _, r := range s {
		n++
		seen[r] = true
	}
	return n, len(seen)
}

func encryptionKey(dst *[]byte, v string) error {
	if v == "" {
		return nil // unset: secrets are stored as they are
	}
	key, err := secretbox.ParseKey(v)
	if err != nil {
		return err
	}
	*dst = key
	return nil
}

func hostPort(dst *string, v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("want host:port: %w", err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	*dst = v
	return nil
}

// subjectPrefix accepts dot-separated NATS subject tokens without wildcards:
// the consumer appends ".<customer_id>" and subscribes to "<prefix>.>".
func subjectPrefix(dst *string, v string) error {
	for _, tok := range strings.Split(v, ".") {
		if tok == "" {
			return errors.New("empty subject token (leading, trailing or double dot)")
		}
		if strings.ContainsAny(tok, "*> \t\r\n") {
			return errors.New("subject prefix must not contain wildcards or whitespace")
		}
	}
	*dst = v
	return nil
}

// streamName follows JetStream's rule: the name becomes a directory and part
// of API subjects.
func streamName(dst *string, v string) error {
	if strings.ContainsAny(v, ".*> \t\r\n/\\") {
		return errors.New("stream name must not contain '.', '*', '>', '/', '\\' or whitespace")
	}
	*dst = v
	return nil
}

func logLevel(dst *slog.Level, v string) error {
	switch strings.ToLower(v) {
	case "debug":
		*dst = slog.LevelDebug
	case "info":
		*dst = slog.LevelInfo
	case "warn", "warning":
		*dst = slog.LevelWarn
	case "error":
		*dst = slog.LevelError
	default:
		return errors.New("want debug, info, warn or error")
	}
	return nil
}

func oneOf(dst *string, v string, allowed ...string) error {
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			*dst = a
			return nil
		}
	}
	return fmt.Errorf("want one of %s", strings.Join(allowed, ", "))
}

func intIn(dst *int, v string, lo, hi int) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return errors.New("not an integer")
	}
	if n < lo || n > hi {
		return fmt.Errorf("want %d to %d", lo, hi)
	}
	*dst = n
	return nil
}

func durationIn(dst *time.Duration, v string, lo, hi time.Duration) error {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		return errors.New("not a Go duration such as 2ms or 1s")
	}
	if d < lo || d > hi {
		return fmt.Errorf("want %s to %s", lo, hi)
	}
	*dst = d
	return nil
}

func boolean(dst *bool, v string) error {
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return errors.New("want true or false")
	}
	*dst = b
	return nil
}
