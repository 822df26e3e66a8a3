package metering

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
)

// openTraced opens the test database with a statement tracer:
// TRACE_SQL=1 go test -bench Ingest ./metering prints where a batch's
// transaction spends its time.
func openTraced(ctx context.Context) (*pg.DB, *testdb.Tracer, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, nil, err
	}
	tr := &testdb.Tracer{}
	cfg.ConnConfig.Tracer = tr
	db, err := pg.OpenConfig(ctx, cfg)
	return db, tr, err
}
