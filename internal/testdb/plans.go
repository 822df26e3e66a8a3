package testdb

import (
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// neverAnalyzedFill gives the hot tables a realistic size: 10,000
// customers and wallets, 100,000 accounts and balance rows (1..30000 owned
// by the wallets: two grants' and one overage account each), 20,000 grants,
// 100,000 entries, events, usage records, aggregates and unique values.
// Nothing here (nor in NeverAnalyzed) runs ANALYZE: the planner sees
// tables without statistics, as on a server with autovacuum off.
const neverAnalyzedFill = `
INSERT INTO customers (id, created_at) SELECT 'c' || i, now() FROM generate_series(1, 10000) i;
INSERT INTO wallets (id, customer_id, asset, overage_policy, alert_thresholds, overage_account_id, created_at)
	SELECT md5('w' || i)::UUID, 'c' || i, 'credits', 'block', '[]', md5('a' || (i + 20000))::UUID, now() FROM generate_series(1, 10000) i;
INSERT INTO ledger_accounts (id, code, asset, owner_id, normal, no_overdraft, shards, created_at)
	SELECT md5('a' || i)::UUID, 'acct:' || i, 'credits', CASE WHEN i <= 30000 THEN md5('w' || (i % 10000 + 1))::UUID END, 'credit', false, 1, now()
	FROM generate_series(1, 100000) i;
INSERT INTO ledger_balances (account_id, shard, normal, no_overdraft, credits_posted)
	SELECT md5('a' || i)::UUID, 0, 'credit', false, 1000 FROM generate_series(1, 100000) i;
INSERT INTO grants (id, wallet_id, account_id, kind, amount, priority, effective_at, status, created_at)
	SELECT md5('g' || i)::UUID, md5('w' || (i % 10000 + 1))::UUID, md5('a' || i)::UUID, 'paid', 1000, 0, now(), 'active', now() FROM generate_series(1, 20000) i;
INSERT INTO ledger_entries (id, idempotency_key, fingerprint, kind, status, owner_id, created_at)
	SELECT md5('e' || i)::UUID, 'key:' || i, '\x00', 'usage', 'posted', md5('w' || (i % 10000 + 1))::UUID, now() FROM generate_series(1, 100000) i;
INSERT INTO events (event_id, customer_id, event_name, ts, source, received_at, entry_id)
	SELECT 'ev' || i, 'c' || (i % 10000 + 1), 'tokens', now(), 'http', now(), md5('e' || i)::UUID FROM generate_series(1, 100000) i;
INSERT INTO usage_records (event_id, meter_id, asset, customer_id, ts, dims_key, quantity_before, quantity_after, amount, period_start, entry_id)
	SELECT 'ev' || i, md5('m0')::UUID, 'credits', 'c' || (i % 10000 + 1), now(), '', 0, 1, 1, '2026-12-01', md5('e' || i)::UUID FROM generate_series(1, 100000) i;
INSERT INTO usage_aggregates (meter_id, customer_id, dims_key, asset, period_start, quantity, amount)
	SELECT md5('m' || (i % 10))::UUID, 'c' || (i / 10 + 1), '', 'credits', '2026-12-01', 1, 1 FROM generate_series(0, 99999) i;
INSERT INTO usage_unique_values (meter_id, customer_id, dims_key, asset, period_start, value)
	SELECT md5('m' || (i % 10))::UUID, 'c' || (i / 10 + 1), '', 'credits', '2026-12-01', 'v' FROM generate_series(0, 99999) i;
`

// BigTables are the tables NeverAnalyzed fills: a plan must reach them
// through an index.
var BigTables = []string{"customers", "wallets", "ledger_accounts", "ledger_balances", "grants", "ledger_entries",
	"events", "usage_records", "usage_aggregates", "usage_unique_values"}

// NeverAnalyzed returns the URL of a new database of realistic size
// whose tables were never analyzed (see neverAnalyzedFill), dropped at the
// test's end. Keys of its rows: wallets md5('w'||i) and customers 'c'||i
// for i in 1..10000; accounts md5('a'||i) and entries md5('e'||i),
// 'key:'||i, for i in 1..100000; grants md5('g'||i) for i in 1..20000;
// events 'ev'||i; aggregates of meters md5('m'||0..9), period 2026-12-01.
func NeverAnalyzed(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url, drop, err := Create(ctx, "plans")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := drop(ctx); err != nil {
			t.Error(err)
		}
	})
	if err := fill(ctx, url); err != nil {
		t.Fatalf("fill: %v", err)
	}
	// The filling session's counters reach pg_stat_user_tables when it
	// ends (pg.AnalyzeStale reads them): wait until every table shows its
	// rows, and check none was analyzed meanwhile.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for {
		var shown, analyzed int
		if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE n_mod_since_analyze > 0),
				count(*) FILTER (WHERE last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)
			FROM pg_stat_user_tables WHERE relname = ANY($1)`, BigTables).Scan(&shown, &analyzed); err != nil {
			t.Fatal(err)
		}
		if analyzed > 0 {
			t.Fatalf("%d of the tables were analyzed: the test needs tables without statistics", analyzed)
		}
		if shown == len(BigTables) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("pg_stat_user_tables shows %d of %d filled tables", shown, len(BigTables))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return url
}

func fill(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, neverAnalyzedFill)
	return err
}

// SeqScans explains sql with args as the code sends them (the same text,
// the same Go parameter types) and returns the big tables the plan reads
// with a sequential scan, and the plan's text for a failure message.
func SeqScans(ctx context.Context, conn Beginner, sql string, args ...any) ([]string, string, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, "", err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only: EXPLAIN runs nothing
	var raw []byte
	if err := tx.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+sql, args...).Scan(&raw); err != nil {
		return nil, "", fmt.Errorf("explain: %w", err)
	}
	var plans []struct{ Plan planNode }
	if err := json.Unmarshal(raw, &plans); err != nil {
		return nil, "", err
	}
	big := map[string]bool{}
	for _, b := range BigTables {
		big[b] = true
	}
	var seq []string
	var text strings.Builder
	var walk func(n planNode, depth int)
	walk = func(n planNode, depth int) {
		fmt.Fprintf(&text, "%s%s %s %s rows=%.0f\n", strings.Repeat("  ", depth), n.NodeType, n.Relation, n.Index, n.Rows)
		if n.NodeType == "Seq Scan" && big[n.Relation] {
			seq = append(seq, n.Relation)
		}
		for _, c := range n.Plans {
			walk(c, depth+1)
		}
	}
	for _, p := range plans {
		walk(p.Plan, 0)
	}
	return seq, text.String(), nil
}

// Beginner is a pool or a connection.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

type planNode struct {
	NodeType string     `json:"Node Type"`
	Relation string     `json:"Relation Name"`
	Index    string     `json:"Index Name"`
	Rows     float64    `json:"Plan Rows"`
	Plans    []planNode `json:"Plans"`
}

// Keys are n keys spread evenly over 1..max, as fmt.Sprintf(format, i):
// a batch's keys in a NeverAnalyzed database.
func Keys(format string, n, max int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(format, 1+i*(max/n))
	}
	return out
}

// MD5UUIDs are the UUIDs md5(prefix || i)::UUID of Keys(prefix+"%d", n, max).
func MD5UUIDs(prefix string, n, max int) []uuid.UUID {
	out := make([]uuid.UUID, n)
	for i, k := range Keys(prefix+"%d", n, max) {
		out[i] = uuid.UUID(md5.Sum([]byte(k)))
	}
	return out
}
