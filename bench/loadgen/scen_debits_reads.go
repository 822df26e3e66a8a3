package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/shopspring/decimal"
)

// debits is scenario 4: cfg.DebitWorkers closed-loop callers, each
// debiting a random one of wallets until cfg.DebitDuration has passed.
func (r *runner) debits(ctx context.Context, wallets []account) (result, error) {
	res := result{Scenario: "4", Name: fmt.Sprintf("debits, %d callers over %s wallets for %s",
		r.cfg.DebitWorkers, thousands(len(wallets)), r.cfg.DebitDuration), Unit: "debits/s"}
	amount, err := decimal.NewFromString(r.cfg.DebitAmount)
	if err != nil {
		return res, fmt.Errorf("debit amount: %w", err)
	}
	body := []byte(`{"amount":"` + r.cfg.DebitAmount + `"}`)

	// Each worker keeps its own tallies; they are merged after.
	type tally struct {
		lat       []time.Duration
		ok        map[int]int // wallet index → debits answered 201
		uncertain map[int]bool
		errs      int
		firstErr  string
	}
	tallies := make([]tally, r.cfg.DebitWorkers)
	runCtx, cancel := context.WithTimeout(ctx, r.cfg.DebitDuration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range tallies {
		t := &tallies[w]
		t.ok, t.uncertain = map[int]int{}, map[int]bool{}
		rng := rand.New(rand.NewPCG(uint64(w), 4))
		wg.Go(func() {
			for runCtx.Err() == nil {
				i := rng.IntN(len(wallets))
				t0 := time.Now()
				// The request runs on ctx, not runCtx: the end of the
				// window must not cut a debit off half way, leaving its
				// outcome unknown.
				_, err := r.api.call(ctx, http.MethodPost, "/v1/wallets/"+wallets[i].Wallet+"/debits", body, nil, http.StatusCreated)
				t.lat = append(t.lat, time.Since(t0))
				var se *statusError
				switch {
				case err == nil:
					t.ok[i]++
					continue
				case errors.As(err, &se) && se.Status < 500:
					// Refused: nothing was debited.
				default:
					t.uncertain[i] = true
				}
				t.errs++
				if t.firstErr == "" {
					t.firstErr = err.Error()
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if err := ctx.Err(); err != nil {
		return res, err
	}
	var lat []time.Duration
	for _, t := range tallies {
		lat = append(lat, t.lat...)
		for i, n := range t.ok {
			r.exp.add(wallets[i].Wallet, amount.Mul(decimal.NewFromInt(int64(n))))
			res.Done += n
		}
		for i := range t.uncertain {
			r.exp.uncertain[wallets[i].Wallet] = true
		}
		res.Errors += t.errs
		if t.firstErr != "" && len(res.Notes) < 3 {
			res.Notes = append(res.Notes, "error: "+t.firstErr)
		}
	}
	ls := summarize(lat)
	res.Latency = &ls
	res.Seconds, res.Rate, res.Complete = took.Seconds(), rate(res.Done, took), true
	return res, nil
}

// reader is scenario 5's open-loop balance reads: requests are scheduled
// at a fixed rate whatever the server does, and each one's latency runs
// from its scheduled time, so a server that falls behind shows it as
// queueing in the latency instead of quietly lowering the rate.
type reader struct {
	cancel  context.CancelFunc
	done    chan struct{}
	start   time.Time
	lat     [][]time.Duration // per worker
	errs    []int
	firstEr []string
	dropped int // scheduled requests the bounded queue could not take
	sched   int
}

// startReads begins reading random wallets' balances at perSecond with
// workers concurrent requests.
func (r *runner) startReads(ctx context.Context, wallets []account, perSecond, workers int) *reader {
	ctx, cancel := context.WithCancel(ctx)
	rd := &reader{cancel: cancel, done: make(chan struct{}), start: time.Now(),
		lat: make([][]time.Duration, workers), errs: make([]int, workers), firstEr: make([]string, workers)}
	interval := time.Second / time.Duration(perSecond)
	// A few seconds of backlog; beyond that requests are dropped (and
	// counted), which keeps a stalled server from growing the queue
	// without bound.
	queue := make(chan time.Time, 4*perSecond)
	var wg sync.WaitGroup
	for w := range workers {
		rng := rand.New(rand.NewPCG(uint64(w), 5))
		wg.Go(func() {
			for due := range queue {
				if wait := time.Until(due); wait > 0 {
					time.Sleep(wait)
				}
				_, err := r.api.call(ctx, http.MethodGet, "/v1/wallets/"+wallets[rng.IntN(len(wallets))].Wallet+"/balance", nil, nil, http.StatusOK)
				if ctx.Err() != nil {
					return // cut off by the end of the run: not a sample
				}
				rd.lat[w] = append(rd.lat[w], time.Since(due))
				if err != nil {
					rd.errs[w]++
					if rd.firstEr[w] == "" {
						rd.firstEr[w] = err.Error()
					}
				}
			}
		})
	}
	go func() {
		defer close(rd.done)
		defer wg.Wait()
		defer close(queue)
		// The ticker only wakes the dispatcher; what is due is computed
		// from the start time, so a late tick sends every request it
		// missed, each with its own scheduled time.
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				for due := int(now.Sub(rd.start) / interval); rd.sched < due; rd.sched++ {
					select {
					case queue <- rd.start.Add(time.Duration(rd.sched) * interval):
					default:
						rd.dropped++
					}
				}
			}
		}
	}()
	return rd
}

// stop ends the reads and makes the row.
func (rd *reader) stop(perSecond int) result {
	rd.cancel()
	<-rd.done
	took := time.Since(rd.start)
	res := result{Scenario: "5", Name: fmt.Sprintf("balance reads at %s/s (open loop) during a second run of 1", thousands(perSecond)),
		Unit: "reads/s", Complete: true}
	var lat []time.Duration
	for w := range rd.lat {
		lat = append(lat, rd.lat[w]...)
		res.Errors += rd.errs[w]
		if rd.firstEr[w] != "" && len(res.Notes) < 3 {
			res.Notes = append(res.Notes, "error: "+rd.firstEr[w])
		}
	}
	ls := summarize(lat)
	res.Latency = &ls
	res.Done, res.Planned = len(lat)-res.Errors, rd.sched
	res.Seconds, res.Rate = took.Seconds(), rate(res.Done, took)
	if rd.dropped > 0 {
		res.Complete = false
		res.Notes = append(res.Notes, fmt.Sprintf("%s of %s scheduled reads dropped: the queue of reads waiting for one of the %d workers was full",
			thousands(rd.dropped), thousands(rd.sched), len(rd.lat)))
	}
	return res
}
