package metering

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/creditledger/creditledger/wallet"
)

// BenchmarkIngest measures usage events per second through Ingest (the
// path HTTP and NATS share): 1,000-event calls, four callers at once, over
// 1,000 customers (spread) or one (hot), sum meter and per-unit price.
//
//	go test -run '^$' -bench Ingest -benchtime 40000x ./metering
func BenchmarkIngest(b *testing.B) {
	for _, bc := range []struct {
		name      string
		customers int
	}{{"spread", 1000}, {"hot", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			w := newWorld(b)
			var tr *testdb.Tracer
			if os.Getenv("TRACE_SQL") != "" {
				db, t, err := openTraced(ctx)
				if err != nil {
					b.Fatal(err)
				}
				tr = t
				w = worldOn(b, db)
			}
			m := w.meter(b, Meter{Code: "tok", Aggregation: Sum, Property: "tokens"})
			w.price(b, m, `{"model":"per_unit","unit_price":"0.000003"}`)
			customers := make([]string, bc.customers)
			wallets := make([]wallet.WalletID, bc.customers)
			for i := range customers {
				customers[i], wallets[i] = func() (string, wallet.WalletID) { c, wl := w.customer(b, "1000000"); return c, wl.ID }()
			}
			raws := make([]json.RawMessage, b.N)
			for i := range raws {
				c := customers[i%len(customers)]
				raws[i] = event(fmt.Sprintf("b%d-%s", i, c), c, m.EventName, map[string]any{"tokens": 1000})
			}
			if err := testdb.Analyze(ctx, w.db.Pool); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			chunks := make(chan []json.RawMessage)
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for c := range chunks {
						if res, err := w.svc.Ingest(ctx, c, IngestOptions{Source: "bench"}); err != nil || res.Accepted != len(c) {
							b.Errorf("ingest: %+v %v", res, err)
						}
					}
				}()
			}
			for len(raws) > 0 {
				k := min(len(raws), MaxBatchEvents)
				chunks <- raws[:k]
				raws = raws[k:]
			}
			close(chunks)
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			if tr != nil {
				tr.Dump(os.Stderr)
			}
			// Every wallet shows exactly its share of the debit.
			per := b.N / len(customers)
			for i, id := range wallets[:min(len(wallets), 20)] {
				n := per
				if i < b.N%len(customers) {
					n++
				}
				bal, err := w.wallets.Balance(ctx, id, nil)
				if err != nil {
					b.Fatal(err)
				}
				if want := decimal.NewFromInt(int64(n)).Mul(decimal.RequireFromString("0.003")).String(); bal.Consumed.String() != want {
					b.Fatalf("wallet %d consumed %s, want %s", i, bal.Consumed, want)
				}
			}
		})
	}
}
