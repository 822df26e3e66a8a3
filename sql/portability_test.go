package sql

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// engineOnly lists syntax that one of PostgreSQL and CockroachDB lacks or
// treats differently. The schema must run on both.
var engineOnly = []struct {
	pattern *regexp.Regexp
	why     string
}{
	{regexp.MustCompile(`(?i)\b(big|small)?serial\b`), "SERIAL needs sequences; use UUID keys"},
	{regexp.MustCompile(`(?i)\bsequence\b|\bnextval\s*\(`), "sequences serialize hot inserts on CockroachDB"},
	{regexp.MustCompile(`(?i)\bidentity\b`), "identity columns are sequences"},
	{regexp.MustCompile(`(?i)\btrigger\b`), "no triggers: business rules live in Go"},
	{regexp.MustCompile(`(?i)\b(function|procedure|language\s+plpgsql|do\s+\$\$)\b`), "no stored code"},
	{regexp.MustCompile(`(?i)\b(listen|notify|unlisten)\b`), "LISTEN/NOTIFY is PostgreSQL-only"},
	{regexp.MustCompile(`(?i)pg_(try_)?advisory`), "advisory locks are PostgreSQL-only"},
	{regexp.MustCompile(`(?i)\bdeferr(able|ed)\b`), "deferred constraints are PostgreSQL-only"},
	{regexp.MustCompile(`(?i)\bupsert\b`), "UPSERT is CockroachDB-only; use INSERT … ON CONFLICT"},
	{regexp.MustCompile(`(?i)\b(interleave|storing|family)\b|using\s+hash`), "CockroachDB-only table options"},
	{regexp.MustCompile(`(?i)\bexclude\s+using\b`), "exclusion constraints are PostgreSQL-only"},
	{regexp.MustCompile(`(?i)\binherits\b|\bunlogged\b|\btablespace\b`), "PostgreSQL-only table options"},
	{regexp.MustCompile(`(?i)\bcreate\s+(type|domain|extension|rule)\b`), "engine-specific object"},
	{regexp.MustCompile(`(?i)::\s*(regclass|oid|money|serial)\b`), "engine-specific type"},
	{regexp.MustCompile(`(?i)\bconcurrently\b`), "CREATE INDEX CONCURRENTLY is PostgreSQL-only"},
}

func TestMigrationsArePortable(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no migrations embedded")
	}
	seen := map[string]bool{}
	for _, m := range ms {
		prefix, _, ok := strings.Cut(m.Version, "_")
		if !ok || len(prefix) != 4 {
			t.Errorf("%s: name must be NNNN_description.sql", m.Version)
		}
		if seen[prefix] {
			t.Errorf("%s: number %s used twice", m.Version, prefix)
		}
		seen[prefix] = true
		code := stripComments(m.SQL)
		for _, rule := range engineOnly {
			if loc := rule.pattern.FindStringIndex(code); loc != nil {
				t.Errorf("%s: %q: %s", m.Version, code[loc[0]:loc[1]], rule.why)
			}
		}
		if n := countStatements(code); n != 1 {
			t.Errorf("%s: %d statements; one schema change per migration", m.Version, n)
		}
	}
}

// goRules are the rules for SQL written inside Go code.
func goRules() []struct {
	pattern *regexp.Regexp
	why     string
} {
	return []struct {
		pattern *regexp.Regexp
		why     string
	}{
		{regexp.MustCompile(`(?i)pg_(try_)?advisory`), "advisory locks are PostgreSQL-only"},
		{regexp.MustCompile("(?i)[\"`]\\s*(listen|notify)\\s"), "LISTEN/NOTIFY is PostgreSQL-only"},
		// The statement, not the word: an error message may say "upsert".
		{regexp.MustCompile("(?i)[\"`]\\s*upsert\\s+into\\b"), "UPSERT is CockroachDB-only"},
		{regexp.MustCompile(`(?i)\bnextval\s*\(`), "no sequences"},
	}
}

// The same rules hold for SQL written inside Go code.
func TestGoSQLIsPortable(t *testing.T) {
	goOnly := goRules()
	root := ".."
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "data" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "portability_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, rule := range goOnly {
			if loc := rule.pattern.FindIndex(b); loc != nil {
				t.Errorf("%s: %q: %s", path, b[loc[0]:loc[1]], rule.why)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The scanner itself must catch what it claims to catch.
func TestPortabilityRulesCatch(t *testing.T) {
	bad := []string{
		"CREATE TABLE t (id SERIAL PRIMARY KEY)",
		"CREATE SEQUENCE s",
		"CREATE TRIGGER x AFTER INSERT ON t",
		"SELECT pg_advisory_lock(1)",
		"UPSERT INTO t VALUES (1)",
		"ALTER TABLE t ADD CONSTRAINT c UNIQUE (a) DEFERRABLE INITIALLY DEFERRED",
		"CREATE INDEX CONCURRENTLY i ON t (a)",
		"CREATE TABLE t (a INT, FAMILY f (a))",
	}
	for _, s := range bad {
		caught := false
		for _, rule := range engineOnly {
			if rule.pattern.MatchString(s) {
				caught = true
			}
		}
		if !caught {
			t.Errorf("not caught: %s", s)
		}
	}
	if n := countStatements("CREATE TABLE a (x INT); CREATE TABLE b (y INT);"); n != 2 {
		t.Errorf("countStatements = %d, want 2", n)
	}
	if n := countStatements("CREATE TABLE a (x TEXT DEFAULT ';')"); n != 1 {
		t.Errorf("countStatements with quoted ; = %d, want 1", n)
	}
}

func stripComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// countStatements counts non-empty statements separated by semicolons outside quotes.
func countStatements(s string) int {
	n, inQuote, nonEmpty := 0, false, false
	for _, r := range s {
		switch {
		case r == '\'':
			inQuote = !inQuote
			nonEmpty = true
		case r == ';' && !inQuote:
			if nonEmpty {
				n++
			}
			nonEmpty = false
		case !inQuote && (r == ' ' || r == '\n' || r == '\t' || r == '\r'):
		default:
			nonEmpty = true
		}
	}
	if nonEmpty {
		n++
	}
	return n
}

func TestGoSQLRulesTellStatementsFromWords(t *testing.T) {
	caught := func(src string) bool {
		for _, r := range goRules() {
			if r.pattern.MatchString(src) {
				return true
			}
		}
		return false
	}
	for _, src := range []string{"`UPSERT INTO t VALUES (1)`", `" upsert into t"`, `"SELECT pg_advisory_lock(1)"`, "`LISTEN ch`"} {
		if !caught(src) {
			t.Errorf("not caught: %s", src)
		}
	}
	if caught(`"upsert aggregates: %w"`) {
		t.Error("an error message was taken for SQL")
	}
}
