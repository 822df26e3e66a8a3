package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var full = flag.Bool("chaos.full", os.Getenv("CHAOS_FULL") != "", "run the full fault suite (make chaos) instead of the short one")

// suite is what every scenario shares: the binaries, the project-local
// PostgreSQL cluster, the directory everything lives in, and the report.
var suite struct {
	Dir     string
	Bin     Binaries
	Cluster *Cluster
	Report  Report
}

func mode() string {
	if *full {
		return "full"
	}
	return "short"
}

// pick is the short or the full value of a setting.
func pick[T any](short, long T) T {
	if *full {
		return long
	}
	return short
}

func TestMain(m *testing.M) {
	flag.Parse()
	// The short scenarios mostly wait (for redeliveries, for bounds), so
	// they all run at once unless -test.parallel says otherwise; its
	// default, GOMAXPROCS, would run two at a time on two cores.
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !*full && !set {
		_ = flag.Set("test.parallel", "8")
	}
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	suite.Report.Start = time.Now()
	removeStale()
	dir, err := os.MkdirTemp("", "chaos-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos: %v\n", err)
		return 1
	}
	suite.Dir = dir
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "chaos: %v\n", err)
		return 1
	}
	keep := os.Getenv("CHAOS_KEEP") != ""
	defer func() {
		if keep {
			fmt.Fprintf(os.Stderr, "chaos: kept %s (logs, stores, the cluster's data)\n", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	suite.Bin, err = Build(ctx, filepath.Join(dir, "bin"))
	if err == nil {
		suite.Cluster, err = NewCluster(ctx, dir)
	}
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos: setup: %v\n", err)
		return 1
	}
	defer func() {
		if err := suite.Cluster.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "chaos: stop the local PostgreSQL: %v\n", err)
		}
	}()
	code := m.Run()

	var b strings.Builder
	fmt.Fprintf(&b, "Fault suite (%s), %s, %.0f s, PostgreSQL in %s on port %d\n\n", mode(),
		time.Now().UTC().Format("2006-01-02 15:04Z"), time.Since(suite.Report.Start).Seconds(), suite.Cluster.Dir, suite.Cluster.Port)
	suite.Report.Markdown(&b)
	fmt.Println(b.String())
	if path := os.Getenv("CHAOS_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "chaos: CHAOS_REPORT: %v\n", err)
		}
	}
	return code
}

// removeStale deletes the directories of earlier runs whose test process
// is gone (a run that timed out never reached its cleanup; its children
// died with it). Only directories with the suite's owner.pid are touched.
func removeStale() {
	files, _ := filepath.Glob(filepath.Join(os.TempDir(), "chaos-*", "owner.pid"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(filepath.Dir(f))
		}
	}
}

// Rig is one scenario's world: its own database on the suite's cluster,
// its own nats-server and store, its ledgerd.
type Rig struct {
	t       *testing.T
	Name    string
	Dir     string
	DBURL   string
	Cluster *Cluster
	NATS    *NATSServer
	Broker  *Broker
	Ledgerd *Ledgerd
	API     *API
}

// Seed is the scenario's random seed: CHAOS_SEED, or the clock. It is in
// the row's notes, so the moments and the workload can be drawn again.
func Seed(t *testing.T, row *Row) uint64 {
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("CHAOS_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("seed %d", seed)
	row.Notef("seed %d", seed)
	return seed
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// concurrent lets the scenarios of the short suite run side by side (the
// suite then takes as long as its longest scenario); the full suite runs
// them one after the other, so each has the machine to itself and its
// timings mean something.
func concurrent(t *testing.T) {
	if !*full {
		t.Parallel()
	}
}

// NewRig starts a scenario's nats-server and ledgerd on a fresh database
// on cluster, and creates the meter and its price.
func NewRig(ctx context.Context, t *testing.T, name string, cluster *Cluster) *Rig {
	t.Helper()
	dir := filepath.Join(suite.Dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := &Rig{t: t, Name: name, Dir: dir, Cluster: cluster}
	var err error
	if r.DBURL, err = cluster.CreateDatabase(ctx, "chaos_"+strings.ReplaceAll(name, "-", "_")+"_"+randHex(4)); err != nil {
		t.Fatal(err)
	}
	if r.NATS, err = StartNATS(ctx, suite.Bin.NATSServer, filepath.Join(dir, "nats")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.NATS.Close() })
	if r.Broker, err = DialBroker(r.NATS.URL()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Broker.Close)
	key := NewAdminKey()
	r.Ledgerd, err = NewLedgerd(LedgerdConfig{
		Bin: suite.Bin.Ledgerd, DataDir: filepath.Join(dir, "ledgerd-data"), DatabaseURL: r.DBURL,
		NATSURL: r.NATS.URL(), AdminKey: key, LogPath: filepath.Join(dir, "ledgerd.log"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Ledgerd.Start(ctx, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Ledgerd.Stop(); err != nil {
			t.Logf("ledgerd stop: %v", err)
		}
		if t.Failed() {
			t.Logf("%s: ledgerd's last warnings and errors (%s):\n%s", name, r.Ledgerd.LogPath, LogTail(r.Ledgerd.LogPath, 12))
		}
	})
	r.API = NewAPI(r.Ledgerd.Base, key, 30*time.Second)
	if err := CreateMeterAndPrice(ctx, r.API); err != nil {
		t.Fatal(err)
	}
	return r
}

// Verify runs ledgerctl verify and puts the result in the row.
func (r *Rig) Verify(ctx context.Context, row *Row) {
	code, out := Verify(ctx, suite.Bin.Ledgerctl, r.DBURL)
	row.Verify = fmt.Sprintf("exit %d", code)
	if code != 0 {
		r.t.Errorf("ledgerctl verify exited %d:\n%s", code, out)
		row.Notef("ledgerctl verify exited %d: %s", code, firstLines(out, 5))
	}
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append(lines[:n], "…")
	}
	return strings.Join(lines, " / ")
}

// LogCount counts the ledgerd log lines containing every one of subs.
func (r *Rig) LogCount(subs ...string) (int, string) {
	lines, n := Grep(r.Ledgerd.LogPath, 1, subs...)
	first := ""
	if len(lines) > 0 {
		first = lines[0]
		if len(first) > 400 {
			first = first[:400] + "…"
		}
	}
	return n, first
}
