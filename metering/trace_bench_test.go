package metering

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/creditledger/creditledger/ledger"
)

// sqlTracer sums the time of each SQL statement (by its first 90
// characters) over a benchmark: TRACE_SQL=1 go test -bench Ingest ./metering
// prints where a batch's transaction spends its time, the poor man's
// pg_stat_statements (which needs a server restart to load).
type sqlTracer struct {
	mu sync.Mutex
	d  map[string]time.Duration
	n  map[string]int
}

type traceKey struct{}

func (t *sqlTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	s := strings.Join(strings.Fields(data.SQL), " ")
	if len(s) > 90 {
		s = s[:90]
	}
	return context.WithValue(ctx, traceKey{}, [2]any{s, time.Now()})
}

func (t *sqlTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	v := ctx.Value(traceKey{}).([2]any)
	t.mu.Lock()
	t.d[v[0].(string)] += time.Since(v[1].(time.Time))
	t.n[v[0].(string)]++
	t.mu.Unlock()
}

func (t *sqlTracer) dump() {
	type kv struct {
		k string
		d time.Duration
	}
	var all []kv
	for k, d := range t.d {
		all = append(all, kv{k, d})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].d > all[j].d })
	for _, x := range all[:min(25, len(all))] {
		fmt.Fprintf(os.Stderr, "%8.0fms %6d  %s\n", float64(x.d.Microseconds())/1000, t.n[x.k], x.k)
	}
}

func openTraced(ctx context.Context) (*ledger.DB, *sqlTracer, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, nil, err
	}
	tr := &sqlTracer{d: map[string]time.Duration{}, n: map[string]int{}}
	cfg.ConnConfig.Tracer = tr
	db, err := ledger.OpenConfig(ctx, cfg)
	return db, tr, err
}
