package wallet

import (
	"context"
	"testing"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/google/uuid"
)

// TestBatchPlansWithoutStatistics explains the wallet stage's batch
// statements with 500 wallets, as the code sends them, on a database of
// realistic size that was never analyzed: the reads must reach wallets,
// grants and balances through an index with no statistics at all.
func TestBatchPlansWithoutStatistics(t *testing.T) {
	testdb.Require(t, dsn)
	ctx := context.Background()
	db, err := pg.Open(ctx, testdb.NeverAnalyzed(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n = 500
	wallets := testdb.MD5UUIDs("w", n, 10000)
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
			{"loadWallets", loadWalletsSQL(false), []any{wallets}},
			{"loadWallets with sums", loadWalletsSQL(true), []any{wallets}},
			{"loadGrants", loadGrantsSQL, []any{wallets, []uuid.UUID{}}},
		})
	})
	// The UPDATEs (updateReactionsSQL, updateGrantsSQL) join unnest to
	// wallets and grants, tables of one or a few rows per customer, and are
	// left to the planner: with statistics (pg.AnalyzeStale) it may still
	// hash 10,000 wallets for 500, which it rightly finds as cheap.
}
