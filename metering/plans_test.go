package metering

import (
	"context"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/google/uuid"
)

// TestBatchPlansWithoutStatistics explains the metering stage's batch
// statements with 500 events, as the code sends them, on a database of
// realistic size that was never analyzed: none may read events,
// usage_records, usage_aggregates or usage_unique_values sequentially
// (nor look events up by id that way: an event is its own idempotency record).
func TestBatchPlansWithoutStatistics(t *testing.T) {
	testdb.Require(t, dsn)
	ctx := context.Background()
	db, err := pg.Open(ctx, testdb.NeverAnalyzed(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n = 500
	// Aggregates of meters md5('m'||0..9), customers c1..c10000, dims '',
	// asset credits, period 2026-12-01 (see testdb.NeverAnalyzed).
	meters := make([]uuid.UUID, n)
	for i, m := range testdb.MD5UUIDs("m", 10, 10) {
		for j := i; j < n; j += 10 {
			meters[j] = m
		}
	}
	customers := testdb.Keys("c%d", n, 10000)
	dims, assets, values := make([]string, n), make([]string, n), make([]string, n)
	periods := make([]time.Time, n)
	period := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range dims {
		assets[i], periods[i], values[i] = "credits", period, "v"
	}
	ids := testdb.Keys("new%d", n, 1000000)
	texts, nullTexts := make([]string, n), make([]*string, n)
	times, nullTimes := make([]time.Time, n), make([]*time.Time, n)
	entries, nullUUIDs := make([]uuid.UUID, n), make([]*uuid.UUID, n)
	fps := make([][]byte, n)
	meterPtrs := make([]*uuid.UUID, n)
	for i := range meterPtrs {
		meterPtrs[i], fps[i] = &meters[i], []byte{1}
	}
	for _, q := range []struct {
		name string
		sql  string
		args []any
	}{
		{"lockAggregates", lockAggregatesSQL, []any{meters, customers, dims, assets, periods}},
		{"loadUniques", loadUniquesSQL, []any{meters, customers, dims, assets, periods, values}},
		{"lookupEvents", lookupEventsSQL, []any{testdb.Keys("ev%d", n, 100000)}},
		{"insertEvents", insertEventsSQL, []any{ids, customers, texts, times, nullTexts, texts, times, entries, nullTexts, fps,
			nullUUIDs, nullTexts, nullTexts, nullTexts, nullTexts, nullTexts, nullTexts, nullTexts, nullTexts, nullTexts, nullUUIDs, nullTimes}},
		{"insertRecords", insertRecordsSQL, []any{ids, meterPtrs, assets, customers, times, dims, nullTexts, nullTexts, nullTexts,
			texts, texts, texts, nullUUIDs, periods, entries, texts}},
		{"writeAggregates", writeAggregatesSQL, []any{meters, customers, dims, assets, periods, texts, nullTimes, texts}},
	} {
		t.Run(q.name, func(t *testing.T) {
			seq, plan, err := testdb.SeqScans(ctx, db.Pool, q.sql, q.args...)
			if err != nil {
				t.Fatal(err)
			}
			if len(seq) > 0 {
				t.Errorf("sequential scan of %v:\n%s", seq, plan)
			}
		})
	}
}
