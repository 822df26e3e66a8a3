// Command loadgen is the end-to-end benchmark behind `make bench`. In one
// process it runs a NATS server (JetStream on a temporary directory), makes a
// fresh PostgreSQL database, execs ledgerd against both, creates customers
// and wallets over the API, and drives the scenarios of the benchmark issue:
//
//  1. NATS ingest spread over the customers
//  2. NATS ingest on one hot wallet
//  3. HTTP ingest in batches
//  4. synchronous debits, closed loop
//  5. paced balance reads during a second run of 1
//  6. scenario 1 with one transaction per event (LEDGER_POSTER_MAX_BATCH=1)
//
// After each it checks every wallet's balance against what it was charged
// and runs ledger.Verify. It writes the results as JSON (-out) and as a
// markdown fragment (-markdown) that scripts/bench.sh puts in BENCHMARKS.md.
//
// Exit status: 0 when the run completed and every check passed (targets
// missed or not); 1 when a check failed or the run stopped early; 2 on bad
// flags.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/internal/natsserver"
	"github.com/creditledger/creditledger/internal/pg"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(realMain(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// config is a run's settings, from flags.
type config struct {
	Ledgerd         string
	AdminURL        string
	DBName          string
	Events          int
	Customers       int
	Scenarios       []int
	Quick           bool
	Out             string
	Markdown        string
	Timeout         time.Duration // bound of each scenario
	HTTPBatch       int
	HTTPCallers     int
	DebitWorkers    int
	DebitWallets    int
	DebitDuration   time.Duration
	DebitAmount     string
	ReadRate        int
	ReadWorkers     int
	ReadsAlone      time.Duration
	BaselineEvents  int
	BaselineTimeout time.Duration
	SetupWorkers    int
	GrantWorkers    int
	MaxPending      int
	Backlog         int
	Subscribed      bool                // every customer on a plan that prices the meter
	NoAnalyze       bool                // no VACUUM (ANALYZE) before the scenarios: statistics only as ledgerd gathers them
	Command         string              // as shown in the report
	Getenv          func(string) string // the environment ledgerd's pass-through settings come from
}

func defaultAdminURL(getenv func(string) string) string {
	if u := getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	c := config{Getenv: getenv}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Ledgerd, "ledgerd", "bin/ledgerd", "the ledgerd binary to benchmark")
	fs.StringVar(&c.AdminURL, "database-url", defaultAdminURL(getenv), "admin URL of the PostgreSQL server (a role that may CREATE DATABASE); default $TEST_DATABASE_URL or the local server")
	fs.StringVar(&c.DBName, "db-name", "ledger_bench", "database to drop and create for the run")
	fs.IntVar(&c.Events, "events", 200000, "events per ingest scenario (1, 2, 3, 5)")
	fs.IntVar(&c.Customers, "customers", 10000, "customers (each with one wallet) the spread scenarios use")
	scen := fs.String("scenarios", "1,2,3,4,5,6", "which scenarios to run, comma-separated; they run in numeric order")
	fs.BoolVar(&c.Quick, "quick", false, "small counts for a smoke test (flags given explicitly still win)")
	fs.StringVar(&c.Out, "out", "", "write the results as JSON to this file")
	fs.StringVar(&c.Markdown, "markdown", "", "write the results as a markdown fragment to this file")
	fs.DurationVar(&c.Timeout, "timeout", 90*time.Second, "time bound of each scenario: nothing new is sent after it (what was sent is still waited for, up to as long again)")
	fs.IntVar(&c.HTTPBatch, "http-batch", 1000, "events per POST /v1/events (scenario 3)")
	fs.IntVar(&c.HTTPCallers, "http-callers", 8, "concurrent POST /v1/events callers (scenario 3)")
	fs.IntVar(&c.DebitWorkers, "debit-workers", 64, "concurrent debit callers (scenario 4)")
	fs.IntVar(&c.DebitWallets, "debit-wallets", 1000, "wallets the debits go to (scenario 4)")
	fs.DurationVar(&c.DebitDuration, "debit-duration", 30*time.Second, "how long debits run (scenario 4)")
	fs.StringVar(&c.DebitAmount, "debit-amount", "0.01", "amount of each debit (scenario 4)")
	fs.IntVar(&c.ReadRate, "read-rate", 2000, "balance reads a second, paced (scenario 5)")
	fs.IntVar(&c.ReadWorkers, "read-workers", 64, "concurrent balance reads at most (scenario 5)")
	fs.DurationVar(&c.ReadsAlone, "reads-alone", 15*time.Second, "how long scenario 5's reads run again with nothing else, as a reference (0: not at all)")
	fs.IntVar(&c.BaselineEvents, "baseline-events", 20000, "events of the one-transaction-per-event baseline (scenario 6)")
	fs.DurationVar(&c.BaselineTimeout, "baseline-timeout", 90*time.Second, "time bound of the baseline (scenario 6)")
	fs.IntVar(&c.SetupWorkers, "setup-workers", 32, "concurrent requests while creating customers and checking balances")
	fs.IntVar(&c.GrantWorkers, "grant-workers", 64, "concurrent grant requests while setting up")
	fs.IntVar(&c.MaxPending, "max-pending", 4000, "NATS async publishes in flight at most")
	fs.IntVar(&c.Backlog, "backlog", 20000, "published events ledgerd may be behind at most before publishing waits")
	fs.BoolVar(&c.Subscribed, "subscribed", false, "put every customer on a plan pricing the meter at the same price, so each batch resolves prices through subscriptions and plan versions")
	fs.BoolVar(&c.NoAnalyze, "no-analyze", false, "run the scenarios without the harness's VACUUM (ANALYZE) before each: on a server with autovacuum off the tables have only the statistics ledgerd gathers itself")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.Quick {
		for name, v := range map[string]func(){
			"events":          func() { c.Events = 2000 },
			"customers":       func() { c.Customers = 100 },
			"debit-wallets":   func() { c.DebitWallets = 100 },
			"debit-duration":  func() { c.DebitDuration = 5 * time.Second },
			"baseline-events": func() { c.BaselineEvents = 1000 },
			"timeout":         func() { c.Timeout = time.Minute },
			"reads-alone":     func() { c.ReadsAlone = 2 * time.Second },
		} {
			if !set[name] {
				v()
			}
		}
	}
	var err error
	if c.Scenarios, err = parseScenarios(*scen); err != nil {
		return c, err
	}
	for name, v := range map[string]int{"events": c.Events, "customers": c.Customers, "http-batch": c.HTTPBatch,
		"http-callers": c.HTTPCallers, "debit-workers": c.DebitWorkers, "debit-wallets": c.DebitWallets,
		"read-rate": c.ReadRate, "read-workers": c.ReadWorkers, "baseline-events": c.BaselineEvents,
		"setup-workers": c.SetupWorkers, "grant-workers": c.GrantWorkers, "max-pending": c.MaxPending, "backlog": c.Backlog} {
		if v < 1 {
			return c, fmt.Errorf("-%s must be at least 1", name)
		}
	}
	if c.HTTPBatch > 1000 {
		return c, errors.New("-http-batch: ledgerd takes at most 1,000 events a call")
	}
	if _, err := decimal.NewFromString(c.DebitAmount); err != nil {
		return c, fmt.Errorf("-debit-amount: %w", err)
	}
	c.Command = "loadgen " + strings.Join(redactArgs(withoutOutputs(args)), " ")
	return c, nil
}

func parseScenarios(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 6 {
			return nil, fmt.Errorf("-scenarios: %q is not a scenario (1 to 6)", f)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// withoutOutputs drops -out and -markdown from args: where this run's
// report went is no part of how to repeat it.
func withoutOutputs(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		name, _, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if strings.HasPrefix(args[i], "-") && (name == "out" || name == "markdown") {
			if !hasValue {
				i++ // the value is the next argument
			}
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// redactArgs hides a password in a URL argument shown in the report.
func redactArgs(args []string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		if strings.Contains(a, "://") {
			if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "-") {
				out[i] = k + "=" + redactURL(v)
			} else {
				out[i] = redactURL(a)
			}
		}
	}
	return out
}

func realMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	rep, err := run(ctx, cfg, log)
	if err != nil {
		log.Error("run stopped early", "err", err)
	}
	if cfg.Out != "" {
		if werr := writeJSON(cfg.Out, rep); werr != nil {
			log.Error("write results", "err", werr)
			return 1
		}
	}
	if cfg.Markdown != "" {
		var b strings.Builder
		writeMarkdown(&b, rep)
		if werr := os.WriteFile(cfg.Markdown, []byte(b.String()), 0o644); werr != nil {
			log.Error("write markdown", "err", werr)
			return 1
		}
	}
	if cfg.Out == "" && cfg.Markdown == "" {
		writeMarkdown(stdout, rep)
	}
	if !rep.correct() {
		log.Error("the run had failures: see the report")
		return 1
	}
	return 0
}

// run is one whole benchmark. The report is returned even when the run
// stops early, with what was measured until then.
func run(ctx context.Context, cfg config, log *slog.Logger) (*report, error) {
	start := time.Now()
	rep := &report{Started: start.UTC(), Command: cfg.Command, Quick: cfg.Quick, Events: cfg.Events,
		Customers: cfg.Customers, Subscribed: cfg.Subscribed, NoAnalyze: cfg.NoAnalyze, Ledgerd: map[string]string{}}
	r := &runner{cfg: cfg, log: log, hc: newHTTPClient(), exp: newExpectation(), price: decimal.RequireFromString(unitPriceStr)}
	err := r.run(ctx, rep) // stops ledgerd and NATS before it returns
	rep.LedgerdExits = r.exitProblem
	for i := 1; i <= r.starts; i++ {
		w, e, first := logCounts(filepath.Join(r.tmp, "ledgerd-"+strconv.Itoa(i)+".log"))
		rep.LogWarnings += w
		rep.LogErrors += e
		rep.FirstLines = append(rep.FirstLines, first...)
	}
	if r.db != nil {
		r.db.Close()
	}
	if err != nil {
		rep.Error = err.Error()
	}
	rep.Rows = judge(rep.Rows)
	rep.TookSeconds = time.Since(start).Seconds()
	if r.tmp != "" {
		if err == nil && rep.correct() {
			os.RemoveAll(r.tmp)
		} else {
			log.Info("kept ledgerd's logs for a look", "dir", r.tmp)
		}
	}
	return rep, err
}

func (r *runner) run(ctx context.Context, rep *report) error {
	cfg := r.cfg
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	r.runID = hex.EncodeToString(id)

	benchURL, settings, err := freshDatabase(ctx, cfg.AdminURL, cfg.DBName)
	rep.PostgreSQL = settings
	if err != nil {
		return err
	}
	if settings.Fsync != "on" {
		r.log.Warn("PostgreSQL runs with fsync off: commits cost nothing and the numbers do not mean what they say", "fsync", settings.Fsync)
	}
	r.log.Info("database created", "url", redactURL(benchURL), "postgres", settings.Version, "fsync", settings.Fsync,
		"synchronous_commit", settings.SynchronousCommit)

	if r.tmp, err = os.MkdirTemp("", "loadgen-"); err != nil {
		return err
	}
	ns, err := natsserver.Start(ctx, natsserver.Options{Addr: "127.0.0.1:0", StoreDir: filepath.Join(r.tmp, "nats"), Name: "loadgen"})
	if err != nil {
		return fmt.Errorf("nats server: %w", err)
	}
	// Deferred calls run last-in first-out: ledgerd stops (registered
	// below), then this client closes, then the server it talked to.
	defer ns.Shutdown()
	if r.nats, err = dialNATS(ns.ClientURL(), cfg.MaxPending); err != nil {
		return err
	}
	defer r.nats.close()

	r.env = map[string]string{
		"DATABASE_URL":     benchURL,
		"NATS_URL":         ns.ClientURL(),
		"LEDGER_ADMIN_KEY": newAdminKey(),
		"LEDGER_DATA_DIR":  filepath.Join(r.tmp, "data"),
		"LEDGER_LOG_LEVEL": "warn",
	}
	for _, k := range passThroughEnv() {
		if v := cfg.Getenv(k); v != "" {
			r.env[k] = v
			rep.Ledgerd[k] = v
		}
	}
	defer r.stopLedgerd()
	if err := r.startLedgerd(ctx, nil); err != nil {
		return err
	}
	// ledgerd has migrated; the pool is for ledger.Verify.
	if r.db, err = pg.Open(ctx, benchURL); err != nil {
		return fmt.Errorf("open bench database: %w", err)
	}
	t0 := time.Now()
	if r.fix, err = setup(ctx, r.log, r.api, cfg.Customers, cfg.SetupWorkers, cfg.GrantWorkers, cfg.Subscribed); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	rep.SetupSeconds = time.Since(t0).Seconds()
	rep.SetupNotes = r.fix.Notes
	r.log.Info("setup done", "customers", cfg.Customers, "took", time.Since(t0).Round(time.Millisecond))

	for _, s := range cfg.Scenarios {
		t0 := time.Now()
		if cfg.NoAnalyze {
			// As on a database nobody maintains: what the planner knows
			// is what ledgerd's own pg.KeepStatistics gathered.
		} else if err := vacuumAnalyze(ctx, r.db); err != nil {
			return fmt.Errorf("vacuum before scenario %d: %w", s, err)
		}
		r.log.Info("scenario starting", "scenario", s, "vacuum_analyze", time.Since(t0).Round(time.Millisecond))
		rows, err := r.scenario(ctx, s)
		rep.Rows = append(rep.Rows, rows...)
		for _, row := range rows {
			r.log.Info("scenario done", "scenario", row.Scenario, "rate", fmt.Sprintf("%.0f %s", row.Rate, row.Unit),
				"complete", row.Complete, "errors", row.Errors, "checks_ok", row.Checks == nil || row.Checks.ok())
		}
		if err != nil {
			return fmt.Errorf("scenario %d: %w", s, err)
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// newAdminKey makes the admin key of one run's ledgerd, in the form
// `make run` uses: 256 random bits in hex, which ledgerd's strength rule
// (internal/config) accepts.
func newAdminKey() string {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return "loadgen_admin_" + hex.EncodeToString(key)
}
