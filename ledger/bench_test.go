package ledger

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
)

// latencyObserver keeps every batch's size and commit time.
type latencyObserver struct {
	mu      sync.Mutex
	sizes   []int
	commits []time.Duration
	retries int
}

func (o *latencyObserver) BatchCommitted(_, ops int, took time.Duration, retries int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sizes = append(o.sizes, ops)
	o.commits = append(o.commits, took)
	o.retries += retries
}
func (o *latencyObserver) BatchFailed(int, int, error) {}
func (o *latencyObserver) OpRefused(int, string)       {}

func pct[T any](xs []T, cmp func(a, b T) int, p float64) T {
	s := slices.Clone(xs)
	slices.SortFunc(s, cmp)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkPoster measures transfers per second through the poster and the
// batches it forms: spread over 1,000 owners, and all on one hot owner.
//
//	go test -run '^$' -bench Poster -benchtime 20000x ./ledger
func BenchmarkPoster(b *testing.B) {
	for _, bc := range []struct {
		name   string
		owners int
		iso    pgx.TxIsoLevel
	}{
		{"spread/serializable", 1000, pgx.Serializable},
		{"spread/repeatable-read", 1000, pgx.RepeatableRead},
		{"hot/serializable", 1, pgx.Serializable},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			obs := &latencyObserver{}
			e := newEnv(b, Options{Shards: 8, MaxBatch: 1000, Linger: 2 * time.Millisecond, Tx: pg.TxOptions{IsoLevel: bc.iso}})
			e.l.opts.Observer = obs
			grants := make([]Account, bc.owners)
			owners := make([]OwnerID, bc.owners)
			var opens []*Pending
			for i := range grants {
				owners[i] = OwnerID(uuid.New())
				spec := AccountSpec{ID: NewAccountID(), Code: "grant:" + owners[i].String(), Asset: e.asset, Owner: owners[i], Normal: Credit, NoOverdraft: true}
				grants[i] = Account{ID: spec.ID}
				p, err := e.l.Enqueue(ctx, &CreateAccountOp{IdempotencyKey: "open:" + spec.Code, Spec: spec})
				if err != nil {
					b.Fatal(err)
				}
				opens = append(opens, p)
			}
			for _, p := range opens {
				if _, err := p.Wait(ctx); err != nil {
					b.Fatal(err)
				}
			}
			obs.mu.Lock()
			obs.sizes, obs.commits, obs.retries = nil, nil, 0
			obs.mu.Unlock()
			run := uuid.NewString()[:8]
			if err := testdb.Analyze(ctx, e.db.Pool); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			pend := make([]*Pending, b.N)
			for i := 0; i < b.N; i++ {
				k := i % len(grants)
				p, err := e.l.Enqueue(ctx, &TransferOp{IdempotencyKey: fmt.Sprintf("%s-%d", run, i), Owner: owners[k],
					Postings: Postings(Transfer{Debit: e.funding.ID, Credit: grants[k].ID, Amount: MustAmount("0.000003")})})
				if err != nil {
					b.Fatal(err)
				}
				pend[i] = p
			}
			for _, p := range pend {
				if out, err := p.Wait(ctx); err != nil || out.Status != StatusPosted {
					b.Fatalf("%+v %v", out, err)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			obs.mu.Lock()
			defer obs.mu.Unlock()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
			b.ReportMetric(float64(len(obs.sizes)), "batches")
			b.ReportMetric(float64(pct(obs.sizes, func(a, b int) int { return a - b }, 0.5)), "batch-p50")
			b.ReportMetric(float64(slices.Max(obs.sizes)), "batch-max")
			dur := func(a, b time.Duration) int { return int(a - b) }
			b.ReportMetric(float64(pct(obs.commits, dur, 0.5).Microseconds())/1000, "commit-p50-ms")
			b.ReportMetric(float64(pct(obs.commits, dur, 0.99).Microseconds())/1000, "commit-p99-ms")
			b.ReportMetric(float64(obs.retries), "retries")
		})
	}
}
