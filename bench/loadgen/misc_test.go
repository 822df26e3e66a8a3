package main

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ledgerdconfig "github.com/creditledger/creditledger/internal/config"
)

// The key loadgen gives ledgerd must pass ledgerd's own check, or every
// run would stop at start.
func TestNewAdminKeyIsAccepted(t *testing.T) {
	key := newAdminKey()
	c, err := ledgerdconfig.Load(func(k string) string {
		if k == "LEDGER_ADMIN_KEY" {
			return key
		}
		return ""
	})
	if err != nil || c.AdminKey != key {
		t.Fatalf("ledgerd's configuration refuses loadgen's admin key: %v", err)
	}
	if newAdminKey() == key {
		t.Fatal("two runs got the same admin key")
	}
}

func TestParseStatusKB(t *testing.T) {
	status := []byte("Name:\tledgerd\nVmPeak:\t 1300000 kB\nVmHWM:\t  123456 kB\nVmRSS:\t  100000 kB\nThreads:\t12\n")
	if got, err := parseStatusKB(status, "VmHWM"); err != nil || got != 123456 {
		t.Errorf("VmHWM = %d, %v; want 123456", got, err)
	}
	if _, err := parseStatusKB(status, "VmSwap"); err == nil {
		t.Error("a missing field parsed")
	}
	if _, err := parseStatusKB([]byte("VmHWM:\t12 MB\n"), "VmHWM"); err == nil {
		t.Error("a field in another unit parsed")
	}
}

func TestLedgerdEnv(t *testing.T) {
	getenv := func(k string) string {
		return map[string]string{"PATH": "/bin", "HOME": "/root", "DATABASE_URL": "postgres://elsewhere", "LEDGER_HTTP_ADDR": ":8080"}[k]
	}
	env := ledgerdEnv(getenv, map[string]string{"DATABASE_URL": "postgres://bench", "LEDGER_POSTER_MAX_BATCH": "1000"},
		map[string]string{"LEDGER_POSTER_MAX_BATCH": "1"})
	want := []string{"PATH=/bin", "HOME=/root", "DATABASE_URL=postgres://bench", "LEDGER_POSTER_MAX_BATCH=1000", "LEDGER_POSTER_MAX_BATCH=1"}
	if !slices.Equal(env, want) {
		t.Errorf("env = %q, want %q (the user's own DATABASE_URL and LEDGER_* must not leak in; overrides come last)", env, want)
	}
}

func TestParseFlags(t *testing.T) {
	getenv := func(k string) string {
		if k == "TEST_DATABASE_URL" {
			return "postgres://u:secret@db:5432/postgres"
		}
		return ""
	}
	c, err := parseFlags([]string{"-quick", "-events", "300", "-scenarios", "6, 1,1"}, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Events != 300 || c.Customers != 100 || c.DebitDuration != 5*time.Second || c.BaselineEvents != 1000 {
		t.Errorf("-quick with -events: %+v; want events 300 (explicit wins), customers 100, 5s, baseline 1000", c)
	}
	if !slices.Equal(c.Scenarios, []int{1, 6}) {
		t.Errorf("scenarios = %v, want [1 6]", c.Scenarios)
	}
	if c.NoAnalyze {
		t.Error("NoAnalyze without -no-analyze")
	}
	if c, err := parseFlags([]string{"-no-analyze", "-scenarios", "3"}, getenv, io.Discard); err != nil || !c.NoAnalyze {
		t.Errorf("-no-analyze: NoAnalyze %v, err %v", c.NoAnalyze, err)
	}
	if c.AdminURL != "postgres://u:secret@db:5432/postgres" {
		t.Errorf("admin URL = %q, want TEST_DATABASE_URL", c.AdminURL)
	}
	d, err := parseFlags(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if d.Events != 200000 || d.Customers != 10000 || d.DebitWorkers != 64 || d.ReadRate != 2000 ||
		d.DebitDuration != 30*time.Second || d.BaselineEvents != 20000 || d.BaselineTimeout != 90*time.Second ||
		!slices.Equal(d.Scenarios, []int{1, 2, 3, 4, 5, 6}) {
		t.Errorf("defaults are not the issue's: %+v", d)
	}
	for _, bad := range [][]string{{"-scenarios", "7"}, {"-scenarios", "x"}, {"-events", "0"}, {"-http-batch", "1001"},
		{"-debit-amount", "lots"}, {"extra"}} {
		if _, err := parseFlags(bad, getenv, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
	r, _ := parseFlags([]string{"-database-url=postgres://u:secret@db/postgres", "-out", "/tmp/x.json", "--markdown=/tmp/x.md", "-quick"}, getenv, io.Discard)
	if strings.Contains(r.Command, "secret") {
		t.Errorf("command shows the password: %s", r.Command)
	}
	if want := "loadgen -database-url=postgres://u:xxxxx@db/postgres -quick"; r.Command != want {
		t.Errorf("command = %q, want %q", r.Command, want)
	}
}

func TestParallel(t *testing.T) {
	var sum atomic.Int64
	if err := parallel(context.Background(), 100, 8, func(_ context.Context, i int) error {
		sum.Add(int64(i))
		return nil
	}); err != nil || sum.Load() != 4950 {
		t.Errorf("sum = %d, err %v; want 4950", sum.Load(), err)
	}
	boom := errors.New("boom")
	var calls atomic.Int64
	err := parallel(context.Background(), 10000, 4, func(ctx context.Context, i int) error {
		calls.Add(1)
		if i == 10 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
	if calls.Load() == 10000 {
		t.Error("an error did not stop the rest")
	}
	if err := parallel(context.Background(), 0, 4, nil); err != nil {
		t.Errorf("no work: %v", err)
	}
}

func TestParallelUntil(t *testing.T) {
	var calls atomic.Int64
	count := func(context.Context, int) error { calls.Add(1); return nil }
	if sent, err := parallelUntil(context.Background(), 50, 4, time.Time{}, count); sent != 50 || err != nil || calls.Load() != 50 {
		t.Errorf("no deadline: sent %d, calls %d, err %v; want 50, 50, nil", sent, calls.Load(), err)
	}
	calls.Store(0)
	if sent, err := parallelUntil(context.Background(), 50, 4, time.Now().Add(-time.Second), count); sent != 0 || err != nil || calls.Load() != 0 {
		t.Errorf("past deadline: sent %d, calls %d, err %v; want 0, 0, nil", sent, calls.Load(), err)
	}
	// A deadline reached part way: what was handed out is exactly what ran,
	// each to the end.
	done := make([]atomic.Bool, 1000)
	sent, err := parallelUntil(context.Background(), len(done), 2, time.Now().Add(50*time.Millisecond), func(_ context.Context, i int) error {
		time.Sleep(5 * time.Millisecond)
		done[i].Store(true)
		return nil
	})
	if err != nil || sent == 0 || sent == len(done) {
		t.Fatalf("deadline part way: sent %d of %d, err %v", sent, len(done), err)
	}
	for i := range done {
		if done[i].Load() != (i < sent) {
			t.Fatalf("item %d: ran %v, sent %d", i, done[i].Load(), sent)
		}
	}
}

func TestConsumerStateApplied(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   consumerState
		n    int
		done bool
	}{
		{"nothing delivered", consumerState{AckFloor: 100, Pending: 50}, 0, false},
		{"some in flight", consumerState{AckFloor: 120, AckPending: 10, Pending: 20}, 20, false},
		{"acked out of order, floor behind", consumerState{AckFloor: 140, AckPending: 0, Pending: 0}, 50, false},
		{"all applied", consumerState{AckFloor: 150}, 50, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, done := tc.st.applied(100, 150)
			if n != tc.n || done != tc.done {
				t.Errorf("applied = %d, %v; want %d, %v", n, done, tc.n, tc.done)
			}
		})
	}
}

func TestConsumerStateBehind(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   consumerState
		sent int
		want int
	}{
		{"nothing handed out", consumerState{Delivered: 100}, 30, 30},
		{"handed out, not acked", consumerState{Delivered: 120, AckPending: 20}, 30, 30},
		{"some acked", consumerState{Delivered: 120, AckPending: 5}, 30, 15},
		{"all acked", consumerState{Delivered: 130}, 30, 0},
		{"consumer behind an older run", consumerState{Delivered: 90, AckPending: 3}, 30, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.st.behind(100, tc.sent); got != tc.want {
				t.Errorf("behind = %d, want %d", got, tc.want)
			}
		})
	}
}
