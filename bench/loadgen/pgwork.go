package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// pgWork is what the database did for a scenario, per operation (event or
// debit): rows inserted, rows updated, index entries written (an insert or
// a non-HOT update writes one in every index of its table), and the CPU
// time of every PostgreSQL process on this machine. The CPU is only
// meaningful when the server runs here and nothing else uses it.
type pgWork struct {
	RowsPerOp    float64 `json:"rows_per_op"`
	UpdatesPerOp float64 `json:"updates_per_op"`
	IndexPerOp   float64 `json:"index_entries_per_op"`
	CPUMicros    float64 `json:"cpu_us_per_op"` // 0: not measurable here
}

// pgCounters is a snapshot of the counters pgWork is the difference of.
type pgCounters struct {
	inserts, updates, index float64
	cpu                     time.Duration
	cpuOK                   bool
}

// pgSnapshot reads the tables' write counters and the server's CPU. The
// statistics of a backend reach pg_stat_user_tables once it is idle for a
// moment, so the caller waits a little after a scenario before it.
func pgSnapshot(ctx context.Context, pool *pgxpool.Pool) (pgCounters, error) {
	var c pgCounters
	err := pool.QueryRow(ctx, `SELECT COALESCE(SUM(s.n_tup_ins), 0)::FLOAT8, COALESCE(SUM(s.n_tup_upd), 0)::FLOAT8,
			COALESCE(SUM((s.n_tup_ins + s.n_tup_upd - s.n_tup_hot_upd) * i.n), 0)::FLOAT8
		FROM pg_stat_user_tables s
		JOIN (SELECT indrelid, COUNT(*) AS n FROM pg_index GROUP BY indrelid) i ON i.indrelid = s.relid`).
		Scan(&c.inserts, &c.updates, &c.index)
	if err != nil {
		return c, fmt.Errorf("table statistics: %w", err)
	}
	c.cpu, c.cpuOK = postgresCPU()
	return c, nil
}

// sub is the work between two snapshots, per op.
func (c pgCounters) sub(before pgCounters, ops int) *pgWork {
	if ops <= 0 {
		return nil
	}
	n := float64(ops)
	w := &pgWork{RowsPerOp: (c.inserts - before.inserts) / n, UpdatesPerOp: (c.updates - before.updates) / n,
		IndexPerOp: (c.index - before.index) / n}
	if c.cpuOK && before.cpuOK {
		w.CPUMicros = float64((c.cpu - before.cpu).Microseconds()) / n
	}
	return w
}

// postgresCPU sums the CPU time of every process named postgres, from
// /proc (Linux): utime and stime, and cutime and cstime — the postmaster's
// are those of the backends it has reaped, so a backend that ended between
// two snapshots still counts.
func postgresCPU() (time.Duration, bool) {
	dirs, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil || len(dirs) == 0 {
		return 0, false
	}
	const hz = 100 // USER_HZ on Linux
	var ticks int64
	found := false
	for _, p := range dirs {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(raw)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open || s[open+1:close] != "postgres" {
			continue
		}
		f := strings.Fields(s[close+1:])
		if len(f) < 15 {
			continue
		}
		for _, field := range f[11:15] { // utime, stime, cutime, cstime
			n, err := strconv.ParseInt(field, 10, 64)
			if err != nil {
				continue
			}
			ticks += n
		}
		found = true
	}
	return time.Duration(ticks) * time.Second / hz, found
}
