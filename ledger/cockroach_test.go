package ledger

import (
	"context"
	"os"
	"testing"

	"github.com/cockroachdb/cockroach-go/v2/testserver"

	"github.com/creditledger/creditledger/internal/pg"
	schema "github.com/creditledger/creditledger/sql"
)

// TestCockroachDB runs the ledger tests on a real CockroachDB started by
// cockroach-go's testserver. No CockroachDB can be installed on the
// development machines, so it needs a binary to be handed in; testserver
// would otherwise try to download one.
func TestCockroachDB(t *testing.T) {
	bin := os.Getenv("COCKROACH_BINARY")
	if bin == "" {
		t.Skip("COCKROACH_BINARY is not set: the CockroachDB run of the ledger tests needs a cockroach binary " +
			"(e.g. COCKROACH_BINARY=/usr/local/bin/cockroach make test)")
	}
	ts, err := testserver.NewTestServer(testserver.CockroachBinaryPathOpt(bin))
	if err != nil {
		t.Fatalf("start cockroach: %v", err)
	}
	defer ts.Stop()
	if err := ts.WaitForInit(); err != nil {
		t.Fatal(err)
	}
	url := ts.PGURL().String()
	ctx := context.Background()
	db, err := pg.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if db.Engine != pg.Cockroach {
		t.Fatalf("engine = %s, want cockroachdb", db.Engine)
	}
	if _, err := (&schema.Migrator{Pool: db.Pool}).Migrate(ctx); err != nil {
		t.Fatalf("migrations on CockroachDB: %v", err)
	}
	db.Close()

	// The shared tests read the package's dsn; point it at CockroachDB.
	saved := dsn
	dsn = url
	defer func() { dsn = saved }()
	for name, f := range map[string]func(*testing.T){
		"TransferIdempotencyAndOverdraft": TestTransferIdempotencyAndOverdraft,
		"UnbalancedAndUndeclared":         TestUnbalancedAndUndeclaredAreErrorsNotRecords,
		"HoldLifecycle":                   TestHoldLifecycle,
		"PosterBatchesAndDrains":          TestPosterBatchesAndDrains,
		"ConcurrentOperationsMatchModel":  func(t *testing.T) { testConcurrentOperations(t, "") },
		"VerifyDetectsCorruption":         TestVerifyDetectsCorruption,
	} {
		t.Run(name, f)
	}
}
