package pg

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// staleTablesSQL names the tables of the current schema whose statistics
// the planner should not trust: never analyzed (by anyone) although rows
// changed, or, when autovacuum is off ($1), changed since the last ANALYZE
// by more than autovacuum's own default threshold (50 rows + 10%).
const staleTablesSQL = `SELECT relname FROM pg_stat_user_tables
	WHERE schemaname = current_schema() AND n_mod_since_analyze > 0
		AND ((last_analyze IS NULL AND last_autoanalyze IS NULL)
			OR ($1 AND n_mod_since_analyze > 50 + 0.1 * n_live_tup))
	ORDER BY relname`

// AnalyzeStale runs ANALYZE on the stale tables (staleTablesSQL) and
// returns their names. Without statistics PostgreSQL plans the batches'
// UPDATE … FROM unnest($1) as a hash of the whole table; a server with
// autovacuum off (some managed and many freshly restored databases) never
// gathers them. CockroachDB collects statistics itself: nothing to do.
func AnalyzeStale(ctx context.Context, db *DB) ([]string, error) {
	if db.Engine != Postgres {
		return nil, nil
	}
	var autovacuum string
	if err := db.Pool.QueryRow(ctx, "SELECT current_setting('autovacuum')").Scan(&autovacuum); err != nil {
		return nil, fmt.Errorf("show autovacuum: %w", err)
	}
	rows, err := db.Pool.Query(ctx, staleTablesSQL, autovacuum == "off")
	if err != nil {
		return nil, fmt.Errorf("stale tables: %w", err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("stale tables: %w", err)
	}
	for _, t := range tables {
		if _, err := db.Pool.Exec(ctx, "ANALYZE "+pgx.Identifier{t}.Sanitize()); err != nil {
			return nil, fmt.Errorf("analyze %s: %w", t, err)
		}
	}
	return tables, nil
}

// KeepStatistics runs AnalyzeStale now and then every period until ctx
// ends (period 0: never). The check is one read of pg_stat_user_tables,
// so a short period costs little and catches a table that grew fast.
func KeepStatistics(ctx context.Context, db *DB, period time.Duration, log *slog.Logger) {
	if period <= 0 || db.Engine != Postgres {
		return
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		start := time.Now()
		if tables, err := AnalyzeStale(ctx, db); err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("analyze stale tables", "err", err)
		} else if len(tables) > 0 {
			log.Info("analyzed tables with missing or stale statistics", "tables", tables, "took", time.Since(start).Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
