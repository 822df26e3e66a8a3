package ledgertest

import (
	"context"
	"errors"
	"os"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
)

// Verify is a testdb.Main check: every ledger invariant must hold on the
// package's database after its tests. The report goes to stderr.
func Verify(ctx context.Context, url string) error { return verify(ctx, url) }

// VerifyWith is Verify with the modules' own checks too (a package whose
// tests write usage events passes metering.Checks()).
func VerifyWith(checks ...ledger.Check) func(context.Context, string) error {
	return func(ctx context.Context, url string) error { return verify(ctx, url, checks...) }
}

func verify(ctx context.Context, url string, checks ...ledger.Check) error {
	db, err := pg.Open(ctx, url)
	if err != nil {
		return err
	}
	defer db.Close()
	r, err := ledger.Verify(ctx, db, checks...)
	if err != nil {
		return err
	}
	if !r.OK() {
		r.Write(os.Stderr)
		return errors.New("ledger invariants violated")
	}
	return nil
}
