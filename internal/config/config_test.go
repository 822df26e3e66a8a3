package config

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// testEncKey is an encryption key, and testEncHex how it is written.
var (
	testEncKey = []byte("0123456789abcdefghijklmnopqrstuv")
	testEncHex = hex.EncodeToString(testEncKey)
)

// strongKey is an admin key of the form `make run` generates.
const strongKey = "ledger_dev_admin_3f9a1c07e4b2d85610fa93c7b2e4d05a8c1f6e3b9d27a04c5e8f1b3d6a9c2e70"

func TestLoadDefaults(t *testing.T) {
	got, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		DataDir:            "./data",
		HTTPAddr:           ":8080",
		NATSSubjectPrefix:  "ledger.events",
		NATSStream:         "LEDGER_EVENTS",
		EmbeddedNATSAddr:   "127.0.0.1:4222",
		LogLevel:           slog.LevelInfo,
		LogFormat:          "text",
		BodyLimitBytes:     5 << 20,
		PosterShards:       2 * runtime.GOMAXPROCS(0),
		PosterMaxBatch:     1000,
		PosterLinger:       2 * time.Millisecond,
		AnalyzeInterval:    time.Minute,
		PGIsolation:        "repeatable_read",
		NATSWorkers:        8,
		NATSMaxDeliveries:  10,
		InvoiceSeller:      "CreditLedger",
		RunwayAlertDays:    3,
		BalanceCacheMaxAge: 30 * time.Second,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Load(empty) =\n%+v\nwant\n%+v", got, want)
	}
}

func TestLoadOverrides(t *testing.T) {
	tests := []struct {
		name  string
		value string
		check func(Config) bool
	}{
		{"DATABASE_URL", "postgres://u@db:5432/x", func(c Config) bool { return c.DatabaseURL == "postgres://u@db:5432/x" }},
		{"NATS_URL", "nats://n:4222", func(c Config) bool { return c.NATSURL == "nats://n:4222" }},
		{"LEDGER_DATA_DIR", "/var/lib/ledger", func(c Config) bool { return c.DataDir == "/var/lib/ledger" }},
		{"LEDGER_HTTP_ADDR", "127.0.0.1:9000", func(c Config) bool { return c.HTTPAddr == "127.0.0.1:9000" }},
		{"LEDGER_ADMIN_KEY", strongKey, func(c Config) bool { return c.AdminKey == strongKey }},
		{"LEDGER_ENCRYPTION_KEY", testEncHex, func(c Config) bool { return bytes.Equal(c.EncryptionKey, testEncKey) }},
		{"LEDGER_ENCRYPTION_KEY", base64.StdEncoding.EncodeToString(testEncKey), func(c Config) bool { return bytes.Equal(c.EncryptionKey, testEncKey) }},
		{"LEDGER_NATS_SUBJECT_PREFIX", "acme.usage", func(c Config) bool { return c.NATSSubjectPrefix == "acme.usage" }},
		{"LEDGER_NATS_STREAM", "ACME", func(c Config) bool { return c.NATSStream == "ACME" }},
		{"LEDGER_NATS_WORKERS", "16", func(c Config) bool { return c.NATSWorkers == 16 }},
		{"LEDGER_NATS_MAX_DELIVERIES", "3", func(c Config) bool { return c.NATSMaxDeliveries == 3 }},
		{"LEDGER_EMBEDDED_NATS_ADDR", "127.0.0.1:0", func(c Config) bool { return c.EmbeddedNATSAddr == "127.0.0.1:0" }},
		{"LEDGER_LOG_LEVEL", "DEBUG", func(c Config) bool { return c.LogLevel == slog.LevelDebug }},
		{"LEDGER_LOG_LEVEL", "warn", func(c Config) bool { return c.LogLevel == slog.LevelWarn }},
		{"LEDGER_LOG_LEVEL", "error", func(c Config) bool { return c.LogLevel == slog.LevelError }},
		{"LEDGER_LOG_FORMAT", "JSON", func(c Config) bool { return c.LogFormat == "json" }},
		{"LEDGER_BODY_LIMIT_BYTES", "4096", func(c Config) bool { return c.BodyLimitBytes == 4096 }},
		{"LEDGER_POSTER_SHARDS", "1", func(c Config) bool { return c.PosterShards == 1 }},
		{"LEDGER_POSTER_MAX_BATCH", "50", func(c Config) bool { return c.PosterMaxBatch == 50 }},
		{"LEDGER_POSTER_LINGER", "0s", func(c Config) bool { return c.PosterLinger == 0 }},
		{"LEDGER_POSTER_LINGER", "1500us", func(c Config) bool { return c.PosterLinger == 1500*time.Microsecond }},
		{"LEDGER_ANALYZE_INTERVAL", "0", func(c Config) bool { return c.AnalyzeInterval == 0 }},
		{"LEDGER_ANALYZE_INTERVAL", "5m", func(c Config) bool { return c.AnalyzeInterval == 5*time.Minute }},
		{"LEDGER_BALANCE_CACHE_MAX_AGE", "0", func(c Config) bool { return c.BalanceCacheMaxAge == 0 }},
		{"LEDGER_BALANCE_CACHE_MAX_AGE", "500ms", func(c Config) bool { return c.BalanceCacheMaxAge == 500*time.Millisecond }},
		{"LEDGER_WEBHOOK_ALLOW_PRIVATE", "true", func(c Config) bool { return c.WebhookAllowPrivate }},
		{"LEDGER_WEBHOOK_ALLOW_PRIVATE", "1", func(c Config) bool { return c.WebhookAllowPrivate }},
		{"LEDGER_PG_ISOLATION", "repeatable_read", func(c Config) bool { return c.PGIsolation == "repeatable_read" }},
		{"LEDGER_PPROF_ADDR", "127.0.0.1:6060", func(c Config) bool { return c.PprofAddr == "127.0.0.1:6060" }},
		{"LEDGER_INVOICE_SELLER", "Acme Billing Ltd", func(c Config) bool { return c.InvoiceSeller == "Acme Billing Ltd" }},
		{"LEDGER_RUNWAY_ALERT_DAYS", "0", func(c Config) bool { return c.RunwayAlertDays == 0 }},
		{"LEDGER_RUNWAY_ALERT_DAYS", "14", func(c Config) bool { return c.RunwayAlertDays == 14 }},
		{"LEDGER_CORS_ORIGINS", " https://app.example.com, http://localhost:3000/ ", func(c Config) bool {
			return slices.Equal(c.CORSOrigins, []string{"https://app.example.com", "http://localhost:3000"})
		}},
		{"LEDGER_CORS_ORIGINS", "*", func(c Config) bool { return slices.Equal(c.CORSOrigins, []string{"*"}) }},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.name] = true
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			c, err := Load(env(map[string]string{tt.name: tt.value}))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Fatalf("%s=%s not applied: %+v", tt.name, tt.value, c)
			}
		})
	}
	// A variable added to vars() must get an override case here too.
	for _, v := range vars() {
		if !covered[v.name] {
			t.Errorf("no override test for %s", v.name)
		}
	}
}

func TestLoadInvalid(t *testing.T) {
	tests := []struct {
		name, value string
	}{
		{"LEDGER_HTTP_ADDR", "8080"},
		{"LEDGER_HTTP_ADDR", ":http"},
		{"LEDGER_EMBEDDED_NATS_ADDR", "localhost"},
		{"LEDGER_EMBEDDED_NATS_ADDR", "127.0.0.1:99999"},
		{"LEDGER_NATS_SUBJECT_PREFIX", "ledger.>"},
		{"LEDGER_NATS_MAX_DELIVERIES", "1"},
		{"LEDGER_NATS_SUBJECT_PREFIX", "ledger..events"},
		{"LEDGER_NATS_SUBJECT_PREFIX", "ledger.events."},
		{"LEDGER_NATS_STREAM", "ledger.events"},
		{"LEDGER_NATS_STREAM", "a b"},
		{"LEDGER_LOG_LEVEL", "verbose"},
		{"LEDGER_LOG_FORMAT", "xml"},
		{"LEDGER_BODY_LIMIT_BYTES", "1MiB"},
		{"LEDGER_BODY_LIMIT_BYTES", "0"},
		{"LEDGER_POSTER_SHARDS", "-1"},
		{"LEDGER_POSTER_SHARDS", "eight"},
		{"LEDGER_POSTER_MAX_BATCH", "0"},
		{"LEDGER_POSTER_LINGER", "2"},
		{"LEDGER_POSTER_LINGER", "-1ms"},
		{"LEDGER_POSTER_LINGER", "1h"},
		{"LEDGER_ANALYZE_INTERVAL", "-1s"},
		{"LEDGER_BALANCE_CACHE_MAX_AGE", "2m"},
		{"LEDGER_WEBHOOK_ALLOW_PRIVATE", "yes"},
		{"LEDGER_PG_ISOLATION", "read_committed"},
		{"LEDGER_PPROF_ADDR", "6060"},
		{"LEDGER_INVOICE_SELLER", strings.Repeat("x", 201)},
		{"LEDGER_INVOICE_SELLER", "bad \xff utf-8"},
		{"LEDGER_RUNWAY_ALERT_DAYS", "-1"},
		{"LEDGER_RUNWAY_ALERT_DAYS", "a week"},
		{"LEDGER_CORS_ORIGINS", "app.example.com"},
		{"LEDGER_CORS_ORIGINS", "https://app.example.com/path"},
		{"LEDGER_CORS_ORIGINS", "ftp://files.example.com"},
		{"LEDGER_ADMIN_KEY", "changeme"},
		{"LEDGER_ENCRYPTION_KEY", "changeme"},
		{"LEDGER_ENCRYPTION_KEY", testEncHex[:62]},
		{"LEDGER_ENCRYPTION_KEY", base64.StdEncoding.EncodeToString(testEncKey[:16])},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			_, err := Load(env(map[string]string{tt.name: tt.value}))
			if err == nil {
				t.Fatalf("Load accepted %s=%q", tt.name, tt.value)
			}
			if !strings.Contains(err.Error(), tt.name) {
				t.Fatalf("error %q does not name %s", err, tt.name)
			}
		})
	}
}

func TestLoadReportsEveryInvalidVariable(t *testing.T) {
	_, err := Load(env(map[string]string{"LEDGER_POSTER_SHARDS": "x", "LEDGER_LOG_LEVEL": "loud"}))
	if err == nil {
		t.Fatal("Load accepted invalid values")
	}
	for _, name := range []string{"LEDGER_POSTER_SHARDS", "LEDGER_LOG_LEVEL"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestUsageListsEveryVariable(t *testing.T) {
	u := Usage()
	for _, v := range vars() {
		def := v.def
		if def == "" {
			def = "(unset)"
		}
		line := ""
		for l := range strings.Lines(u) {
			if strings.HasPrefix(strings.TrimSpace(l), v.name+" ") {
				line = l
			}
		}
		if line == "" {
			t.Errorf("Usage() has no line for %s", v.name)
			continue
		}
		if !strings.Contains(line, " "+def+" ") || !strings.Contains(line, v.help) {
			t.Errorf("Usage() line for %s lacks its default %q or help: %q", v.name, def, line)
		}
	}
}

// Every default must itself be valid; Load(empty) proves it as a whole, this
// names the culprit.
func TestDefaultsParse(t *testing.T) {
	for _, v := range vars() {
		var c Config
		if err := v.parse(&c, v.def); err != nil {
			t.Errorf("%s default %q: %v", v.name, v.def, err)
		}
	}
}

func TestLogValueHidesSecrets(t *testing.T) {
	c, err := Load(env(map[string]string{
		"DATABASE_URL":          "postgres://app:hunter2@db/ledger",
		"NATS_URL":              "nats://u:natspw@n:4222",
		"LEDGER_ADMIN_KEY":      strongKey,
		"LEDGER_ENCRYPTION_KEY": testEncHex,
	}))
	if err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprint(c.LogValue().Resolve())
	for _, secret := range []string{"hunter2", "natspw", strongKey, testEncHex, "0123456789abcdef"} {
		if strings.Contains(out, secret) {
			t.Errorf("LogValue shows %q: %s", secret, out)
		}
	}
	if !strings.Contains(out, "db/ledger") {
		t.Errorf("LogValue hides the database host: %s", out)
	}
}

func TestAdminKeyStrength(t *testing.T) {
	for _, tc := range []struct {
		name, key string
		want      string // "" accepted; otherwise a word of the error
	}{
		{"make run's key", strongKey, ""},
		{"openssl rand -hex 32", "9c2e70b3d6a1f8e4c5a07d2b9e16f3c84a5d0e7b2c9f1a6e3d8b4c7a0f5e2d19", ""},
		{"openssl rand -base64 32", "q3ZbX1n8Jt4u0c9Wm2Yk7Pd5Hs6Lf+RvAoGe1iTz0Ng=", ""},
		{"a key ledgerctl made", "lk_admin_mfrggzdfmztwq2lk_" + "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst", ""},
		{"unset", "", ""},
		{"a word", "changeme", "too short"},
		{"31 characters", "9c2e70b3d6a1f8e4c5a07d2b9e16f3c", "too short"},
		{"32 of one character", strings.Repeat("a", 32), "too repetitive"},
		{"7 characters repeated", strings.Repeat("abcdefg", 10), "too repetitive"},
		{"32 characters, 8 distinct: 96 bits", strings.Repeat("abcdefgh", 4), "too little entropy"},
		{"42 characters, 8 distinct: 126 bits", strings.Repeat("abcdefgh", 5) + "ab", "too little entropy"},
		{"43 characters, 8 distinct: 129 bits", strings.Repeat("abcdefgh", 5) + "abc", ""},
		// Characters, not bytes: 16 two-byte letters are 16 characters.
		{"16 Greek letters", "αβγδεζηθικλμνξοπ", "too short"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(env(map[string]string{"LEDGER_ADMIN_KEY": tc.key}))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == "" && c.AdminKey != tc.key:
				t.Fatalf("AdminKey = %q, want the key", c.AdminKey)
			case tc.want != "" && err == nil:
				t.Fatal("accepted")
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not say %q", err, tc.want)
			case tc.want != "" && strings.Contains(err.Error(), tc.key):
				t.Fatalf("error %q shows the refused key", err)
			}
		})
	}
}

// A refused secret is named, never quoted: the error ends up in logs.
func TestRefusedSecretsAreNotQuoted(t *testing.T) {
	for name, value := range map[string]string{
		"LEDGER_ADMIN_KEY":      "hunter2hunter2",
		"LEDGER_ENCRYPTION_KEY": "hunter2hunter2",
	} {
		_, err := Load(env(map[string]string{name: value}))
		if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s refused with %v; want an error naming it without its value", name, err)
		}
	}
}
