package text

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/internal/testdb"
)

var dsn string

func TestMain(m *testing.M) { os.Exit(testdb.Main(m, &dsn)) }

// conn is a connection to the package's test database, to hold the checks
// to what PostgreSQL itself refuses.
func conn(tb testing.TB) *pgx.Conn {
	tb.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// stores reports whether PostgreSQL takes s as a value of typ.
func stores(tb testing.TB, c *pgx.Conn, typ, s string) bool {
	tb.Helper()
	var out string
	err := c.QueryRow(context.Background(), `SELECT $1::text::`+typ+`::text`, s).Scan(&out)
	return err == nil
}

func TestCheck(t *testing.T) {
	c := conn(t)
	for _, tc := range []struct {
		name   string
		in     string
		max    int
		detail string // "" when accepted
	}{
		{"plain", "Acme Inc.", 200, ""},
		{"unicode", "Café 東京 🚀", 200, ""},
		{"tab, newline, carriage return", "line one\r\n\tline two", 200, ""},
		{"empty", "", 200, ""},
		{"exactly the limit", strings.Repeat("é", 100), 200, ""},
		{"NUL", "a\x00b", 200, `must not contain NUL (\u0000)`},
		{"escape character", "red \x1b[31m", 200, `must not contain control characters (\u001b at byte 4)`},
		{"bell", "\a", 200, `must not contain control characters (\u0007 at byte 0)`},
		{"invalid UTF-8", "ok \xff\xfe", 200, "must be valid UTF-8 (byte 3 is not)"},
		{"truncated UTF-8", "caf\xc3", 200, "must be valid UTF-8 (byte 3 is not)"},
		{"UTF-8 of a surrogate", "\xed\xa0\x80", 200, "must be valid UTF-8 (byte 0 is not)"},
		{"over-long", strings.Repeat("x", 201), 200, "at most 200 bytes"},
		{"over-long in bytes, not runes", strings.Repeat("é", 101), 200, "at most 200 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check("name", tc.in, tc.max)
			if tc.detail == "" {
				if err != nil {
					t.Fatalf("Check(%q) = %v", tc.in, err)
				}
				if !stores(t, c, "text", tc.in) {
					t.Fatalf("Check accepts %q, PostgreSQL refuses it", tc.in)
				}
				return
			}
			var te *Error
			if !errors.As(err, &te) || te.Field != "name" || te.Detail != tc.detail {
				t.Fatalf("Check(%q) = %v, want name: %s", tc.in, err, tc.detail)
			}
		})
	}
}

func TestCheckJSON(t *testing.T) {
	c := conn(t)
	for _, tc := range []struct {
		name   string
		in     string
		detail string // "" when accepted
		pgOK   bool   // whether PostgreSQL's JSONB takes it (for valid JSON within the limit)
	}{
		{"object", `{"plan":"gold","n":1,"tags":["a","b"]}`, "", true},
		{"other escapes", `{"a":"\u0001\t\n\"\\\/\u00e9\uFFFF"}`, "", true},
		{"surrogate pair", `{"a":"\ud83d\ude00"}`, "", true},
		{"escaped backslash before u0000 is text", `{"a":"\\u0000"}`, "", true},
		{"NUL escape in a value", `{"a":"x\u0000"}`, `must not contain NUL (\u0000)`, false},
		{"NUL escape in a key", `{"\u0000":1}`, `must not contain NUL (\u0000)`, false},
		{"NUL escape nested", `{"a":[{"b":"\u0000"}]}`, `must not contain NUL (\u0000)`, false},
		{"lone high surrogate", `{"a":"\ud800"}`, `must not contain a lone UTF-16 surrogate (\ud800)`, false},
		{"high surrogate then text", `{"a":"\ud800x"}`, `must not contain a lone UTF-16 surrogate (\ud800)`, false},
		{"two high surrogates", `{"a":"\ud800\ud800"}`, `must not contain a lone UTF-16 surrogate (\ud800)`, false},
		{"lone low surrogate", `{"a":"\uDC00"}`, `must not contain a lone UTF-16 surrogate (\udc00)`, false},
		{"invalid UTF-8", "{\"a\":\"\xff\"}", "must be valid UTF-8", false},
		{"exponent at the limit", `{"a":-1.5E+1000,"b":2e-1000,"c":1e0001000}`, "", true},
		{"number overflowing NUMERIC", `{"a":1e131072}`, numberDetail("1e131072"), false},
		{"number too small for NUMERIC", `{"a":1e-16384}`, numberDetail("1e-16384"), false},
		{"zero with a scale NUMERIC cannot hold", `[0e-20000]`, numberDetail("0e-20000"), false},
		{"exponent overflowing an int", `{"a":0e1077000000}`, numberDetail("0e1077000000"), false},
		{"long number", `[` + strings.Repeat("1", 1001) + `]`, numberDetail(strings.Repeat("1", 20)), true},
		{"over-long", `{"a":"` + strings.Repeat("x", 3000) + `"}`, "at most 2048 bytes", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckJSON("metadata", []byte(tc.in), 2048)
			if tc.detail == "" {
				if err != nil {
					t.Fatalf("CheckJSON(%s) = %v", tc.in, err)
				}
			} else {
				var te *Error
				if !errors.As(err, &te) || te.Field != "metadata" || te.Detail != tc.detail {
					t.Fatalf("CheckJSON(%s) = %v, want metadata: %s", tc.in, err, tc.detail)
				}
			}
			if got := stores(t, c, "jsonb", tc.in); got != tc.pgOK {
				t.Fatalf("PostgreSQL stores %s: %v; the test says %v", tc.in, got, tc.pgOK)
			}
		})
	}
}

func numberDetail(n string) string {
	if len(n) > 20 {
		n = n[:20]
	}
	return "must not contain a number longer than 1000 characters or with an exponent beyond ±1000 (" + n + "…)"
}

// FuzzCheckJSON holds CheckJSON to PostgreSQL: valid JSON it accepts, JSONB
// stores; valid JSON it refuses for a NUL or a surrogate, JSONB refuses.
// (It found that JSONB refuses numbers such as 0e1077000000 too.)
func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":"b"}`, `{"a":"\u0000"}`, `{"\u0000":1}`, `{"a":"\ud800"}`, `{"a":"\udc00\ud800"}`,
		`{"a":"\ud83d\ude00"}`, `{"a":"\\u0000"}`, `["\u0001","\uffff"]`, "{\"a\":\"\xff\"}", `"\ud800\u0041"`,
		`{"a":"\"\u0000"}`, `{"a":1e400}`, `{"a":-0.0}`, `{"a":1e131072}`, `[0e-16384]`, `[1E+1000]`,
	} {
		f.Add([]byte(s))
	}
	c := conn(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			return
		}
		err := CheckJSON("properties", raw, 4096)
		if err == nil {
			if !stores(t, c, "jsonb", string(raw)) {
				t.Fatalf("CheckJSON accepts %q, JSONB refuses it", raw)
			}
			return
		}
		// The limits on numbers are deliberately tighter than NUMERIC's.
		var te *Error
		if errors.As(err, &te) && strings.Contains(te.Detail, "number") {
			return
		}
		if len(raw) <= 4096 && stores(t, c, "jsonb", string(raw)) {
			t.Fatalf("CheckJSON refuses %q (%v), JSONB stores it", raw, err)
		}
	})
}

// FuzzCheck holds Check to PostgreSQL's TEXT: what it accepts is stored,
// and stored unchanged.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"Acme", "a\x00b", "\xff", "tab\there", "\x1b", "東京", "\xed\xa0\x80", ""} {
		f.Add(s)
	}
	c := conn(f)
	f.Fuzz(func(t *testing.T, s string) {
		if Check("name", s, 256) != nil {
			return
		}
		var out string
		if err := c.QueryRow(context.Background(), `SELECT $1::text`, s).Scan(&out); err != nil || out != s {
			t.Fatalf("Check accepts %q; PostgreSQL: %q, %v", s, out, err)
		}
	})
}
