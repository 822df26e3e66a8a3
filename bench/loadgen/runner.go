package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
)

// runner holds one benchmark run's moving parts. Only the orchestrating
// goroutine touches it; scenario workers get what they need as arguments.
type runner struct {
	cfg    config
	log    *slog.Logger
	hc     *http.Client
	nats   *natsClient
	db     *pg.DB // the bench database, for ledger.Verify
	tmp    string
	env    map[string]string // ledgerd's settings, pass-through included
	d      *ledgerdProcess
	starts int // ledgerd processes started, for log file names
	api    *apiClient
	fix    fixture
	exp    *expectation
	price  decimal.Decimal
	runID  string // makes this run's event ids unique

	rssReset    bool // VmHWM could be reset per scenario
	exitProblem []string
}

// startLedgerd starts a ledgerd with the run's settings plus overrides.
func (r *runner) startLedgerd(ctx context.Context, overrides map[string]string) error {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return fmt.Errorf("free port: %w", err)
	}
	set := map[string]string{"LEDGER_HTTP_ADDR": addr}
	for k, v := range r.env {
		set[k] = v
	}
	r.starts++
	logPath := filepath.Join(r.tmp, "ledgerd-"+strconv.Itoa(r.starts)+".log")
	d, err := startLedgerd(ctx, r.cfg.Ledgerd, addr, ledgerdEnv(r.cfg.Getenv, set, overrides), logPath, r.hc)
	if err != nil {
		return err
	}
	r.d = d
	r.api = &apiClient{base: d.base, key: r.env["LEDGER_ADMIN_KEY"], hc: r.hc}
	r.log.Info("ledgerd ready", "addr", addr, "pid", d.cmd.Process.Pid, "overrides", overrides, "log", logPath)
	return nil
}

// stopLedgerd stops the current ledgerd; a non-zero exit is kept for the
// report rather than failing the run.
func (r *runner) stopLedgerd() {
	if r.d == nil {
		return
	}
	if err := r.d.stop(60 * time.Second); err != nil {
		r.exitProblem = append(r.exitProblem, fmt.Sprintf("%s: %v", filepath.Base(r.d.logPath), err))
		r.log.Error("ledgerd did not stop cleanly", "err", err, "log", r.d.logPath)
	}
	r.d = nil
}

// measure runs one scenario with ledgerd's peak RSS reset before it and its
// poster histograms scraped around it.
func (r *runner) measure(ctx context.Context, f func(ctx context.Context) (result, error)) (result, error) {
	r.rssReset = r.d.resetPeakRSS() == nil
	before, err := r.d.scrape(ctx, r.hc)
	if err != nil {
		return result{}, err
	}
	pgBefore, pgErr := pgSnapshot(ctx, r.db.Pool)
	res, err := f(ctx)
	if err != nil {
		return res, err
	}
	after, err := r.d.scrape(ctx, r.hc)
	if err != nil {
		return res, err
	}
	res.Poster = newPosterStats(after.sub(before))
	// ledgerd's backends report their table statistics once idle a moment.
	time.Sleep(1500 * time.Millisecond)
	pgAfter, err := pgSnapshot(ctx, r.db.Pool)
	if pgErr == nil && err == nil {
		res.Work = pgAfter.sub(pgBefore, res.Done)
	} else {
		res.Notes = append(res.Notes, fmt.Sprintf("database work unmeasured: %v", errors.Join(pgErr, err)))
	}
	if res.PeakRSS, err = r.d.peakRSS(); err != nil {
		res.Notes = append(res.Notes, "peak RSS unreadable: "+err.Error())
	}
	if !r.rssReset {
		res.Notes = append(res.Notes, "peak RSS is ledgerd's since start (VmHWM could not be reset)")
	}
	return res, nil
}

// check compares every fixture wallet's balance with what it was charged,
// then runs ledger.Verify over the whole database.
func (r *runner) check(ctx context.Context, skip string) *checkResult {
	start := time.Now()
	c := &checkResult{Skipped: skip}
	if skip == "" {
		accts := r.fix.all()
		problems := make([]string, len(accts))
		err := parallel(ctx, len(accts), r.cfg.SetupWorkers, func(ctx context.Context, i int) error {
			w := accts[i].Wallet
			if r.exp.uncertain[w] {
				return nil
			}
			b, err := r.api.balance(ctx, w)
			if err != nil {
				problems[i] = err.Error()
				return nil
			}
			if m := balanceMismatch(r.exp.charged[w], b.Consumed, b.Overage); m != "" {
				problems[i] = accts[i].Customer + ": " + m
			}
			return nil
		})
		if err != nil {
			c.Skipped = "balance reads failed: " + err.Error()
		}
		for i, p := range problems {
			if r.exp.uncertain[accts[i].Wallet] {
				c.Uncertain++
				continue
			}
			c.Wallets++
			if p != "" {
				c.Mismatches++
				if len(c.Examples) < 5 {
					c.Examples = append(c.Examples, p)
				}
			}
		}
	}
	rep, err := ledger.Verify(ctx, r.db, metering.Checks()...)
	switch {
	case err != nil:
		c.Verify = "ledger.Verify failed to run: " + err.Error()
	case rep.OK():
		c.VerifyOK = true
		c.Verify = fmt.Sprintf("OK: %s entries, %s postings, %s accounts, %s holds", thousands(int(rep.Entries)),
			thousands(int(rep.Postings)), thousands(int(rep.Accounts)), thousands(int(rep.Holds)))
	default:
		c.Verify = fmt.Sprintf("%d violation(s)", len(rep.Violations))
		for i, v := range rep.Violations {
			if i == 5 {
				break
			}
			c.Verify += "; " + v.String()
		}
	}
	c.Seconds = time.Since(start).Seconds()
	lvl := slog.LevelInfo
	if !c.ok() {
		lvl = slog.LevelError
	}
	r.log.Log(ctx, lvl, "checked", "wallets", c.Wallets, "mismatches", c.Mismatches, "uncertain", c.Uncertain,
		"skipped", c.Skipped, "verify", c.Verify, "took", time.Since(start).Round(time.Millisecond))
	return c
}
