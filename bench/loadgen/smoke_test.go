package main

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/testdb"
)

// TestSmoke runs the whole orchestration with tiny counts against the real
// PostgreSQL and a freshly built ledgerd: every scenario must complete and
// every check pass. Numbers are not looked at; they mean nothing here.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ledgerd and runs it against PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := buildLedgerd(ctx, t)

	admin := testdb.AdminURL()
	const dbName = "ledger_bench_test"
	dropAfter(t, admin, dbName)
	cfg, err := parseFlags([]string{
		"-ledgerd", bin, "-database-url", admin, "-db-name", dbName,
		"-events", "200", "-customers", "20", "-http-batch", "50", "-http-callers", "2",
		"-debit-workers", "4", "-debit-wallets", "10", "-debit-duration", "2s",
		"-read-rate", "100", "-read-workers", "4", "-reads-alone", "1s", "-baseline-events", "100", "-baseline-timeout", "30s",
		"-setup-workers", "8", "-grant-workers", "8", "-timeout", "60s",
		"-backlog", "60", // below the events: publishing has to wait for ledgerd
	}, os.Getenv, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	rep, err := run(ctx, cfg, log)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	var md strings.Builder
	writeMarkdown(&md, rep)
	t.Logf("report:\n%s", md.String())

	if !rep.correct() {
		t.Errorf("the run was not correct: error %q, ledgerd exits %q", rep.Error, rep.LedgerdExits)
	}
	want := []string{"1", "2", "3", "4", "5", "5-ingest", "5-alone", "6", "1/6", "rss"}
	var got []string
	for _, r := range rep.Rows {
		got = append(got, r.Scenario)
		if !r.Complete {
			t.Errorf("scenario %s did not complete: %q", r.Scenario, r.Notes)
		}
		if r.Checks != nil && !r.Checks.ok() {
			t.Errorf("scenario %s checks failed: %+v", r.Scenario, *r.Checks)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("rows %v, want %v", got, want)
	}
	byID := map[string]result{}
	for _, r := range rep.Rows {
		byID[r.Scenario] = r
	}
	for _, id := range []string{"1", "2", "3", "5-ingest"} {
		if r := byID[id]; r.Done != 200 || r.Rate <= 0 {
			t.Errorf("scenario %s applied %d of 200 events at %g/s", id, r.Done, r.Rate)
		}
	}
	if r := byID["5-alone"]; r.Done < 50 || r.Errors != 0 || r.Latency == nil {
		t.Errorf("reads alone: %d reads, %d errors, latency %v", r.Done, r.Errors, r.Latency)
	}
	for _, id := range []string{"1", "2", "3", "4", "5", "6"} {
		r := byID[id]
		if r.Checks == nil || r.Checks.Wallets != 21 {
			t.Errorf("scenario %s checked %+v, want the 21 wallets", id, r.Checks)
		}
		if r.PeakRSS <= 0 || r.Poster == nil || r.Poster.Batches == 0 {
			t.Errorf("scenario %s has no RSS or poster figures: rss %d, poster %+v", id, r.PeakRSS, r.Poster)
		}
	}
	if r := byID["4"]; r.Done == 0 || r.Errors != 0 || r.Latency == nil {
		t.Errorf("debits: %d done, %d errors", r.Done, r.Errors)
	}
	if r := byID["5"]; r.Latency == nil || r.Latency.N == 0 {
		t.Errorf("reads: no latencies")
	}
	if r := byID["6"]; r.Poster.BatchP99 != 1 {
		t.Errorf("baseline batches p99 = %g, want 1 (LEDGER_POSTER_MAX_BATCH=1)", r.Poster.BatchP99)
	}
}

// buildLedgerd builds ledgerd into the test's temporary directory.
func buildLedgerd(ctx context.Context, t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ledgerd")
	build := exec.CommandContext(ctx, goCommand(), "build", "-o", bin, "github.com/creditledger/creditledger/cmd/ledgerd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build ledgerd: %v\n%s", err, out)
	}
	return bin
}

// dropAfter drops the run's database when the test ends.
func dropAfter(t *testing.T, admin, dbName string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := dropDatabase(ctx, admin, dbName); err != nil {
			t.Logf("drop %s: %v", dbName, err)
		}
	})
}

// goCommand is the go tool that is running the tests, if PATH lacks one.
func goCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// testWriter sends the harness's log to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestSmokeSubscribed runs the ingest scenarios with every customer on a
// plan: the default book's price is a decoy, so the balance checks pass
// only if each event was priced through its customer's subscription.
func TestSmokeSubscribed(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ledgerd and runs it against PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := buildLedgerd(ctx, t)
	admin := testdb.AdminURL()
	const dbName = "ledger_bench_sub_test"
	dropAfter(t, admin, dbName)
	cfg, err := parseFlags([]string{
		"-ledgerd", bin, "-database-url", admin, "-db-name", dbName, "-subscribed", "-scenarios", "1,3",
		"-events", "200", "-customers", "20", "-http-batch", "50", "-http-callers", "2",
		"-setup-workers", "8", "-grant-workers", "8", "-timeout", "60s",
	}, os.Getenv, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	rep, err := run(ctx, cfg, log)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if !rep.correct() || !rep.Subscribed {
		t.Errorf("the run was not correct: error %q, ledgerd exits %q", rep.Error, rep.LedgerdExits)
	}
	for _, r := range rep.Rows {
		if r.Scenario != "1" && r.Scenario != "3" {
			continue
		}
		if !r.Complete || r.Done != 200 || r.Checks == nil || !r.Checks.ok() || r.Checks.Wallets != 21 {
			t.Errorf("scenario %s: complete %v, %d events, checks %+v", r.Scenario, r.Complete, r.Done, r.Checks)
		}
	}
}
