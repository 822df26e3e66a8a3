package ledger

import (
	"context"
	"slices"
	"testing"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/google/uuid"
)

// TestBatchPlansWithoutStatistics explains the poster's batch statements
// with 500 keys of the Go types the code sends, on a database of realistic
// size that was never analyzed (autovacuum off). The statements that read
// (LATERAL probes) must reach the big tables through an index with no
// statistics at all; the UPDATE, which PostgreSQL may plan as a hash of the
// whole table without them, must once ledgerd's pg.AnalyzeStale has run.
func TestBatchPlansWithoutStatistics(t *testing.T) {
	testdb.Require(t, dsn)
	ctx := context.Background()
	db, err := pg.Open(ctx, testdb.NeverAnalyzed(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n = 500
	accts := testdb.MD5UUIDs("a", n, 100000)
	shards := make([]int32, n)
	amounts := make([]Amount, n)
	hot := make([]bool, n)
	type query struct {
		name string
		sql  string
		args []any
	}
	check := func(t *testing.T, qs []query) {
		for _, q := range qs {
			t.Run(q.name, func(t *testing.T) {
				seq, plan, err := testdb.SeqScans(ctx, db.Pool, q.sql, q.args...)
				if err != nil {
					t.Fatal(err)
				}
				if len(seq) > 0 {
					t.Errorf("sequential scan of %v:\n%s", seq, plan)
				}
			})
		}
	}
	t.Run("never analyzed", func(t *testing.T) {
		check(t, []query{
			{"lookupKeys", lookupKeysSQL, []any{testdb.Keys("key:%d", n, 100000)}},
			{"lockAccounts", lockAccountsSQL, []any{testdb.MD5UUIDs("w", n, 10000), testdb.MD5UUIDs("a", 5, 100000)}},
			{"lockAccounts by id", lockAccountsSQL, []any{[]uuid.UUID{}, accts}},
			{"lockHotRows", lockHotRowsSQL, []any{accts, shards}},
		})
	})
	tables, err := pg.AnalyzeStale(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range testdb.BigTables {
		if !slices.Contains(tables, want) {
			t.Errorf("AnalyzeStale analyzed %v, not %s", tables, want)
		}
	}
	t.Run("analyzed by ledgerd", func(t *testing.T) {
		check(t, []query{
			{"updateBalances", updateBalancesSQL, []any{accts, shards, amounts, amounts, amounts, amounts, hot, MustAmount("10000000000000000000000000")}},
		})
	})
	if again, err := pg.AnalyzeStale(ctx, db); err != nil || len(again) > 0 {
		t.Errorf("AnalyzeStale right after AnalyzeStale analyzed %v (%v), want nothing", again, err)
	}
}
