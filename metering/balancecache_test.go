package metering

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

// hitCounter counts how the cache answered.
type hitCounter struct{ hits, misses int }

func (h *hitCounter) BalanceCacheHit()  { h.hits++ }
func (h *hitCounter) BalanceCacheMiss() { h.misses++ }

// Usage batches keep the balance cache right without reading the grant
// sums: a cached wallet is updated at commit from the sums it had, an
// uncached one is forgotten, and every answer equals the database's.
func TestUsageKeepsTheBalanceCache(t *testing.T) {
	base := newWorld(t)
	ctx := context.Background()
	obs := &hitCounter{}
	cache := wallet.NewBalanceCache(wallet.BalanceCacheOptions{MaxAge: time.Hour, Observer: obs})
	l, err := ledger.New(base.db, ledger.Options{Shards: 2, Modules: []ledger.Module{Module(), cache.Module()},
		Tx: pg.TxOptions{IsoLevel: pgx.TxIsoLevel(os.Getenv("LEDGER_TEST_ISOLATION"))}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	ws := wallet.NewService(l)
	if err := ws.UseBalanceCache(cache); err != nil {
		t.Fatal(err)
	}
	w := &world{l: l, db: base.db, wallets: ws, svc: NewService(l, ws, nil)}
	uncached := base.wallets

	warm, wlWarm := w.customer(t, "100")
	cold, wlCold := w.customer(t, "100")
	m := w.meter(t, Meter{Code: "calls", Aggregation: Count})
	w.price(t, m, `{"model":"per_unit","unit_price":"1.25"}`)
	w.balance(t, wlWarm.ID) // cached now (a miss, then kept)

	for i := range 3 {
		if res := w.ingest(t, event(fmt.Sprintf("bc-w-%d-%s", i, warm), warm, m.EventName, nil),
			event(fmt.Sprintf("bc-c-%d-%s", i, cold), cold, m.EventName, nil)); res.Accepted != 2 {
			t.Fatalf("%+v", res)
		}
		for _, id := range []wallet.WalletID{wlWarm.ID, wlCold.ID} {
			hits := obs.hits
			got := w.balance(t, id)
			want, err := uncached.Balance(ctx, id, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Available.Equal(want.Available) || !got.Consumed.Equal(want.Consumed) || !got.Granted.Equal(want.Granted) ||
				!got.Overage.Equal(want.Overage) || len(got.Grants) != len(want.Grants) {
				t.Fatalf("round %d, wallet %s: cached %+v, database %+v", i, id, got, want)
			}
			if id == wlWarm.ID && obs.hits != hits+1 {
				t.Fatalf("round %d: the warm wallet's read was not answered from memory", i)
			}
		}
	}
	if got := w.balance(t, wlWarm.ID).Consumed.String(); got != "3.75" {
		t.Fatalf("consumed %s, want 3.75", got)
	}
}
