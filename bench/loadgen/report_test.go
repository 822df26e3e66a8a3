package main

import (
	"strings"
	"testing"
)

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 200000: "200,000",
		1234567: "1,234,567", -25000: "-25,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestFmtMs(t *testing.T) {
	for v, want := range map[float64]string{0.123: "0.12", 4.999: "5.00", 12.34: "12.3", 250.4: "250"} {
		if got := fmtMs(v); got != want {
			t.Errorf("fmtMs(%g) = %q, want %q", v, got, want)
		}
	}
}

func TestJudge(t *testing.T) {
	lat := func(p99 float64) *latencySummary { return &latencySummary{N: 100, P50Ms: p99 / 2, P99Ms: p99} }
	rows := judge([]result{
		{Scenario: "1", Rate: 30000, Complete: true, PeakRSS: 120e6},
		{Scenario: "2", Rate: 30000, Complete: false}, // fast but cut short
		{Scenario: "3", Rate: 19999, Complete: true},
		{Scenario: "4", Rate: 3500, Complete: true, Latency: lat(30)}, // p99 too slow
		{Scenario: "5", Rate: 2000, Complete: true, Latency: lat(4)},
		{Scenario: "5-ingest", Rate: 25000, Complete: true, PeakRSS: 310e6},
		{Scenario: "6", Rate: 1500, Complete: true},
	})
	met := map[string]*bool{}
	for _, r := range rows {
		met[r.Scenario] = r.Met
	}
	for id, want := range map[string]bool{"1": true, "2": false, "3": false, "4": false, "5": true, "1/6": true, "rss": false} {
		if met[id] == nil || *met[id] != want {
			t.Errorf("scenario %s met = %v, want %v", id, met[id], want)
		}
	}
	for _, id := range []string{"6", "5-ingest"} {
		if met[id] != nil {
			t.Errorf("scenario %s has a target verdict; it has no target", id)
		}
	}
	last := rows[len(rows)-1]
	if last.Scenario != "rss" || last.PeakRSS != 310e6 {
		t.Errorf("rss row = %+v, want the max, 310 MB", last)
	}
	ratio := rows[len(rows)-2]
	if ratio.Scenario != "1/6" || ratio.Rate != 20 {
		t.Errorf("speed-up row = %+v, want 20×", ratio)
	}
	if got := judge([]result{{Scenario: "1", Rate: 1}}); len(got) != 1 {
		t.Errorf("without 6 (and no RSS) judge added rows: %+v", got)
	}
}

func TestWriteMarkdown(t *testing.T) {
	ok := &checkResult{Wallets: 10001, VerifyOK: true, Verify: "OK: 3 entries"}
	bad := &checkResult{Wallets: 10001, Mismatches: 1, Examples: []string{"c-00007: consumed 1 + overage 0 = 1, expected 2"},
		VerifyOK: true, Verify: "OK"}
	rep := &report{
		Command: "loadgen -events 200000", Customers: 10000, Events: 200000,
		PostgreSQL: pgSettings{Version: "15.20", Fsync: "on", SynchronousCommit: "on", SharedBuffers: "128MB", MaxConnections: "100"},
		Ledgerd:    map[string]string{"LEDGER_PG_ISOLATION": "repeatable_read"},
		Rows: judge([]result{
			{Scenario: "1", Name: "NATS ingest", Unit: "events/s", Rate: 12345.6, Complete: true, PeakRSS: 150e6, Checks: ok,
				Poster: &posterStats{Batches: 200, BatchP50: 1000, BatchP99: 1000, BatchMean: 998.5, CommitP50Ms: 120, CommitP99Ms: 480.5}},
			{Scenario: "4", Name: "debits", Unit: "debits/s", Rate: 2000, Complete: true, Latency: &latencySummary{N: 10, P50Ms: 3.14159, P99Ms: 31.4},
				Checks: bad, Poster: &posterStats{}},
			{Scenario: "6", Name: "baseline", Unit: "events/s", Rate: 1234.5, Complete: false, Checks: ok,
				Notes: []string{"time bound reached"}},
		}),
		LogWarnings: 2,
	}
	var b strings.Builder
	writeMarkdown(&b, rep)
	md := b.String()
	for _, want := range []string{
		"`loadgen -events 200000`",
		"fsync=on, synchronous_commit=on, shared_buffers=128MB",
		"ledgerd settings: LEDGER_PG_ISOLATION=repeatable_read",
		"| scenario | rate | p50 ms | p99 ms | batch p50 / p99 | commit p50 / p99 ms | peak RSS MB | target | met? | checks |",
		"| 1. NATS ingest | 12,346 events/s | – | – | 1,000 / 1,000 | 120 / 480 | 150 | ≥ 25,000 events/s | **missed** | ok |",
		"| 4. debits | 2,000 debits/s | 3.14 | 31.4 | – | – | – | ≥ 3,000 debits/s, p99 ≤ 25 ms | **missed** | **FAILED** |",
		"| 6. baseline | 1,235 events/s (cut short) |",
		"| speed-up of batching: scenario 1 ÷ scenario 6 | 10.0× |",
		"| peak RSS of ledgerd, max over the scenarios |  | – | – | – | – | 150 | ≤ 300 MB | met |  |",
		"| 1 | 200 | 998.5 |",
		"- 4: **1 of 10,001 balances wrong**, e.g. c-00007",
		"- 6: time bound reached",
		"ledgerd logged 2 warnings and 0 errors",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if rep.correct() {
		t.Error("a report with a wrong balance counts as correct")
	}
}

func TestMarkdownTablesAreRectangular(t *testing.T) {
	rep := &report{Rows: judge([]result{
		{Scenario: "1", Name: "a", Unit: "events/s", Rate: 1, Complete: true, Poster: &posterStats{Batches: 1}, Checks: &checkResult{VerifyOK: true}},
		{Scenario: "5", Name: "b", Unit: "reads/s", Rate: 1, Complete: true, Latency: &latencySummary{N: 1}},
		{Scenario: "6", Name: "c", Unit: "events/s", Rate: 1, Complete: true},
	})}
	var b strings.Builder
	writeMarkdown(&b, rep)
	cols := -1
	for _, line := range strings.Split(b.String(), "\n") {
		if !strings.HasPrefix(line, "|") {
			cols = -1
			continue
		}
		n := strings.Count(line, "|")
		if cols == -1 {
			cols = n
		} else if n != cols {
			t.Errorf("row has %d cells' borders, its table %d: %s", n, cols, line)
		}
	}
}
