package wallet

import (
	"context"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/creditledger/creditledger/ledger"
)

// BenchmarkDebit measures synchronous debits the way scenario 4 of the load
// generator sends them, without HTTP: 64 callers at once over 1,000 wallets,
// each waiting for its debit to commit. TRACE_SQL=1 prints time per SQL
// statement.
//
//	go test -run '^$' -bench Debit -benchtime 20000x ./wallet
func BenchmarkDebit(b *testing.B) {
	ctx := context.Background()
	testdb.Require(b, dsn)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		b.Fatal(err)
	}
	var tr *testdb.Tracer
	if os.Getenv("TRACE_SQL") != "" {
		tr = &testdb.Tracer{}
		cfg.ConnConfig.Tracer = tr
	}
	db, err := pg.OpenConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	opts := ledger.Options{Modules: []ledger.Module{Module()}, Tx: pg.TxOptions{IsoLevel: pgx.TxIsoLevel(os.Getenv("LEDGER_TEST_ISOLATION"))}}
	if n, err := strconv.Atoi(os.Getenv("LEDGER_POSTER_SHARDS")); err == nil {
		opts.Shards = n
	}
	l, err := ledger.New(db, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = l.Close(context.Background()) }()
	svc := NewService(l)

	const wallets, callers = 1000, 64
	ids := make([]WalletID, wallets)
	for i := range ids {
		c, err := svc.CreateCustomer(ctx, Customer{Name: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		w, err := svc.CreateWallet(ctx, NewWallet{CustomerID: c.ID, Asset: "CREDITS"})
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := ledger.Unpack(svc.AddGrant(ctx, "", w.ID, NewGrant{Amount: ledger.MustAmount("1000000"), Kind: Paid})); err != nil {
			b.Fatal(err)
		}
		ids[i] = w.ID
	}
	var next atomic.Int64
	lat := make([][]time.Duration, callers)
	if err := testdb.Analyze(ctx, db.Pool); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				if _, _, err := ledger.Unpack(svc.Debit(ctx, "", ids[i%wallets], NewDebit{Amount: ledger.MustAmount("0.5")})); err != nil {
					b.Error(err)
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "debits/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	if tr != nil {
		tr.Dump(os.Stderr)
	}
	// Every wallet was debited exactly its share.
	for i, id := range ids[:20] {
		n := b.N / wallets
		if i < b.N%wallets {
			n++
		}
		bal, err := svc.Balance(ctx, id, nil)
		if err != nil {
			b.Fatal(err)
		}
		if want := decimal.NewFromInt(int64(n)).Div(decimal.NewFromInt(2)); !bal.Consumed.Decimal().Equal(want) {
			b.Fatalf("wallet %d consumed %s, want %s", i, bal.Consumed, want)
		}
	}
}
