package main

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// scenario runs scenario s and returns its rows.
func (r *runner) scenario(ctx context.Context, s int) ([]result, error) {
	cfg := r.cfg
	spread, hot := r.fix.Spread, r.fix.Hot
	prefix := r.runID + "-s" + strconv.Itoa(s)
	spreadName := fmt.Sprintf("NATS ingest, %s events over %s customers", thousands(cfg.Events), thousands(len(spread)))
	switch s {
	case 1:
		res, err := r.natsScenario(ctx, "1", spreadName, makeEvents(prefix, cfg.Events, len(spread), 1), spread)
		return []result{res}, err
	case 2:
		res, err := r.natsScenario(ctx, "2", fmt.Sprintf("NATS ingest, %s events on one wallet", thousands(cfg.Events)),
			makeEvents(prefix, cfg.Events, 1, 2), hot)
		return []result{res}, err
	case 3:
		res, err := r.measure(ctx, func(ctx context.Context) (result, error) {
			return r.httpIngest(ctx, makeEvents(prefix, cfg.Events, len(spread), 3), spread)
		})
		if err == nil {
			res.Checks = r.check(ctx, "")
		}
		return []result{res}, err
	case 4:
		res, err := r.measure(ctx, func(ctx context.Context) (result, error) {
			return r.debits(ctx, spread[:min(cfg.DebitWallets, len(spread))])
		})
		if err == nil {
			res.Checks = r.check(ctx, "")
		}
		return []result{res}, err
	case 5:
		return r.readsDuringIngest(ctx, prefix, spreadName)
	case 6:
		res, err := r.baseline(ctx, prefix)
		return []result{res}, err
	}
	return nil, fmt.Errorf("no scenario %d", s)
}

// readsDuringIngest is scenario 5: paced balance reads while a second
// scenario-1 run (fresh event ids) ingests. Two rows: the reads (with the
// target) and the ingest they ran against.
func (r *runner) readsDuringIngest(ctx context.Context, prefix, spreadName string) ([]result, error) {
	cfg := r.cfg
	evs := makeEvents(prefix, cfg.Events, len(r.fix.Spread), 5)
	var reads result
	var run natsRun
	ing, err := r.measure(ctx, func(ctx context.Context) (result, error) {
		rd := r.startReads(ctx, r.fix.Spread, cfg.ReadRate, cfg.ReadWorkers)
		var err error
		run, err = r.natsIngest(ctx, evs, r.fix.Spread, natsBounds{bound: cfg.Timeout, backlog: cfg.Backlog})
		reads = rd.stop(cfg.ReadRate)
		return natsResult("5-ingest", spreadName+", under the reads of 5", run, len(evs), cfg.Backlog), err
	})
	if err != nil {
		return []result{ing}, err
	}
	reads.Poster, reads.PeakRSS = ing.Poster, ing.PeakRSS
	reads.Checks = r.drainThenCheck(ctx, run, evs, r.fix.Spread)
	if cfg.ReadsAlone <= 0 {
		return []result{reads, ing}, nil
	}

	// The same reads with nothing else running: what the read path costs
	// by itself, so the row above can be read as the price of sharing two
	// cores with an ingest running flat out.
	alone := r.startReads(ctx, r.fix.Spread, cfg.ReadRate, cfg.ReadWorkers)
	select {
	case <-time.After(cfg.ReadsAlone):
	case <-ctx.Done():
	}
	ref := alone.stop(cfg.ReadRate)
	ref.Scenario, ref.Name = "5-alone", fmt.Sprintf("the same reads with nothing else running, %s (reference)", cfg.ReadsAlone)
	return []result{reads, ing, ref}, nil
}

// baseline is scenario 6: scenario 1's workload, bounded, on a ledgerd
// whose poster commits every op in its own transaction. ledgerd is
// restarted for it; if the bound cuts it short, a normal ledgerd applies
// the rest before the checks (untimed).
func (r *runner) baseline(ctx context.Context, prefix string) (result, error) {
	cfg := r.cfg
	n := min(cfg.BaselineEvents, cfg.Events)
	evs := makeEvents(prefix, n, len(r.fix.Spread), 6)
	name := fmt.Sprintf("baseline: %s events as in 1, one transaction each (LEDGER_POSTER_MAX_BATCH=1), bound %s",
		thousands(n), cfg.BaselineTimeout)
	r.stopLedgerd()
	if err := r.startLedgerd(ctx, map[string]string{"LEDGER_POSTER_MAX_BATCH": "1"}); err != nil {
		return result{Scenario: "6", Name: name}, err
	}
	var run natsRun
	res, err := r.measure(ctx, func(ctx context.Context) (result, error) {
		before, err := r.d.scrape(ctx, r.hc)
		if err != nil {
			return result{}, err
		}
		run, err = r.natsIngest(ctx, evs, r.fix.Spread, natsBounds{bound: cfg.BaselineTimeout, stopAtBound: true, backlog: cfg.Backlog})
		if err != nil || run.complete {
			return natsResult("6", name, run, n, cfg.Backlog), err
		}
		// Cut short, the acks undercount: ledgerd acks a fetch of up to
		// 1,000 events only when all are applied. The poster's count of
		// committed operations (one per event; nothing else runs) is
		// exact.
		after, err := r.d.scrape(ctx, r.hc)
		if err != nil {
			return result{}, err
		}
		ops := int(after.BatchSize.Sum - before.BatchSize.Sum)
		acked := run.applied
		run.applied = min(max(run.applied, ops), run.sent)
		res := natsResult("6", name, run, n, cfg.Backlog)
		res.Notes = append(res.Notes, fmt.Sprintf("applied by the bound counted from ledgerd's committed operations "+
			"(ledger_poster_batch_size_sum): %s; acked by then: %s", thousands(ops), thousands(acked)))
		return res, nil
	})
	if err != nil {
		return res, err
	}
	if !run.complete {
		// The rest would take as long again at this pace; a normal
		// ledgerd applies it quickly (the stopped one naks what it had
		// fetched, so it is redelivered at once).
		r.stopLedgerd()
		if err := r.startLedgerd(ctx, nil); err != nil {
			return res, err
		}
	}
	res.Checks = r.drainThenCheck(ctx, run, evs, r.fix.Spread)
	return res, nil
}
