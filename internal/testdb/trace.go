package testdb

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Tracer sums the time of each SQL statement (by its first 90 characters)
// over a benchmark: the poor man's pg_stat_statements, which needs a server
// restart to load. Set it as a pgx ConnConfig.Tracer; TRACE_SQL=1 turns it
// on in the benchmarks that use it.
type Tracer struct {
	mu sync.Mutex
	d  map[string]time.Duration
	n  map[string]int
}

type traceKey struct{}

type traceStart struct {
	sql string
	at  time.Time
}

// TraceQueryStart implements pgx.QueryTracer.
func (t *Tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	s := strings.Join(strings.Fields(data.SQL), " ")
	if len(s) > 90 {
		s = s[:90]
	}
	return context.WithValue(ctx, traceKey{}, traceStart{s, time.Now()})
}

// TraceQueryEnd implements pgx.QueryTracer.
func (t *Tracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	v, ok := ctx.Value(traceKey{}).(traceStart)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.d == nil {
		t.d, t.n = map[string]time.Duration{}, map[string]int{}
	}
	t.d[v.sql] += time.Since(v.at)
	t.n[v.sql]++
}

// Dump writes the 25 statements that took longest in total.
func (t *Tracer) Dump(w io.Writer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := make([]string, 0, len(t.d))
	for k := range t.d {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return t.d[keys[i]] > t.d[keys[j]] })
	for _, k := range keys[:min(25, len(keys))] {
		fmt.Fprintf(w, "%8.0fms %6d  %s\n", float64(t.d[k].Microseconds())/1000, t.n[k], k)
	}
}

// Analyze gathers the planner's statistics after a benchmark's setup, as
// autovacuum would have in a running system: without them a batch's
// "= ANY($1)" over hundreds of ids is planned as a sequential scan, and
// the benchmark measures the missing statistics instead of the code. The
// CI server runs with autovacuum off.
func Analyze(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, "ANALYZE")
	return err
}
