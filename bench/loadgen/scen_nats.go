package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// natsRun is what one NATS ingest run measured.
type natsRun struct {
	from, to  uint64 // the run's events are stream sequences (from, to]
	sent      int    // events published: the first sent of the run's
	applied   int
	took      time.Duration // first publish to every sent event applied (or the deadline)
	published time.Duration // first publish to the last stream ack
	held      time.Duration // publishing waited for ledgerd to catch up
	complete  bool          // every sent event applied
}

// natsBounds are a NATS run's limits.
type natsBounds struct {
	// bound ends publishing; what was sent is then waited for (up to
	// another bound), unless stopAtBound, when the run ends right there
	// with what was applied by then.
	bound       time.Duration
	stopAtBound bool
	// backlog is how far publishing may run ahead of ledgerd: enough that
	// ledgerd's consumer never waits for messages, and small enough that a
	// slow ledgerd catches up soon after the bound.
	backlog int
}

// natsIngest publishes evs on their customers' subjects, never more than
// b.backlog ahead of ledgerd and not after b.bound, and waits until ledgerd
// has applied what it sent. The events' charges are added to the
// expectation once applied.
func (r *runner) natsIngest(ctx context.Context, evs []event, accts []account, b natsBounds) (natsRun, error) {
	msgs := make([]pubMsg, len(evs))
	for i, e := range evs {
		data, err := encodeEvent(e, accts[e.Account].Customer)
		if err != nil {
			return natsRun{}, err
		}
		msgs[i] = pubMsg{subject: subjectPrefix + "." + accts[e.Account].Customer, id: e.ID, data: data}
	}
	var run natsRun
	var err error
	if run.from, err = r.nats.lastSeq(ctx); err != nil {
		return run, err
	}
	start := time.Now()
	deadline := start.Add(b.bound)
	proceed := func(ctx context.Context, sent int) (bool, error) {
		// Held back is the time after a check found ledgerd too far
		// behind, not the checks that let publishing go on at once.
		var since time.Time
		defer func() {
			if !since.IsZero() {
				run.held += time.Since(since)
			}
		}()
		for time.Now().Before(deadline) {
			st, err := r.nats.consumerState(ctx)
			if err != nil {
				return false, err
			}
			if st.behind(run.from, sent) < b.backlog {
				return true, nil
			}
			if since.IsZero() {
				since = time.Now()
			}
			select {
			case <-ctx.Done():
				return false, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
		return false, nil
	}
	if run.sent, err = r.nats.publish(ctx, msgs, proceed); err != nil {
		return run, err
	}
	run.published = time.Since(start)
	if run.to, err = r.nats.lastSeq(ctx); err != nil {
		return run, err
	}
	if got := run.to - run.from; got != uint64(run.sent) {
		// Another publisher on the stream, or ids the stream took for
		// duplicates: either way the expectation would be wrong.
		return run, fmt.Errorf("the stream took %d messages for %d events", got, run.sent)
	}
	wait := deadline
	if !b.stopAtBound {
		wait = time.Now().Add(b.bound)
	}
	done, n, err := r.nats.waitApplied(ctx, run.from, run.to, wait)
	run.applied, run.took = n, done.Sub(start)
	switch {
	case err == nil:
		run.complete = true
		r.exp.addEvents(evs[:run.sent], accts, r.price)
	case errors.Is(err, errNotApplied):
	default:
		return run, err
	}
	return run, nil
}

// drainThenCheck runs the checks after a NATS run. A run that hit its time
// bound is first waited for, untimed, so the checks see every event
// applied; its charges are added once it has. If it is not applied within
// drainBound, the checks are skipped, saying so.
func (r *runner) drainThenCheck(ctx context.Context, run natsRun, evs []event, accts []account) *checkResult {
	if run.complete {
		return r.check(ctx, "")
	}
	r.log.Info("waiting for the rest of the events (not timed)", "applied", run.applied, "of", run.sent)
	timeout := drainBound(r.cfg.Timeout)
	if _, _, err := r.nats.waitApplied(ctx, run.from, run.to, time.Now().Add(timeout)); err != nil {
		return r.check(ctx, fmt.Sprintf("events still unapplied %s after the scenario: %v", timeout, err))
	}
	r.exp.addEvents(evs[:run.sent], accts, r.price)
	return r.check(ctx, "")
}

// drainBound is how long the checks wait for a cut-short run's events: at
// least a minute, which also covers redelivery after the consumer's ack
// wait (30 s) should ledgerd not nak what it held when it stopped.
func drainBound(timeout time.Duration) time.Duration { return max(timeout, time.Minute) }

// natsResult turns a run into a table row.
func natsResult(id, name string, run natsRun, planned, backlog int) result {
	res := result{
		Scenario: id, Name: name, Unit: "events/s", Planned: planned, Done: run.applied,
		Seconds: run.took.Seconds(), Rate: rate(run.applied, run.took), Complete: run.complete && run.sent == planned,
	}
	if run.sent < planned {
		res.Notes = append(res.Notes, fmt.Sprintf("time bound reached: %s of %s events published", thousands(run.sent), thousands(planned)))
	}
	if !run.complete {
		res.Notes = append(res.Notes, fmt.Sprintf("%s of %s published events applied when the run ended; the rate is of those",
			thousands(run.applied), thousands(run.sent)))
	}
	if run.held > run.published/10 {
		// The publish rate is ledgerd's then, not the publisher's.
		res.Notes = append(res.Notes, fmt.Sprintf("publishing was held back %.1f s of %.1f s, waiting for ledgerd to be within %s events",
			run.held.Seconds(), run.published.Seconds(), thousands(backlog)))
	} else {
		res.Notes = append(res.Notes, fmt.Sprintf("all published (stream acks) %.1f s after the first: %s msgs/s",
			run.published.Seconds(), thousands(int(rate(run.sent, run.published)))))
	}
	return res
}

// natsScenario is scenarios 1 and 2: a NATS ingest run, then the checks.
func (r *runner) natsScenario(ctx context.Context, id, name string, evs []event, accts []account) (result, error) {
	var run natsRun
	res, err := r.measure(ctx, func(ctx context.Context) (result, error) {
		var err error
		run, err = r.natsIngest(ctx, evs, accts, natsBounds{bound: r.cfg.Timeout, backlog: r.cfg.Backlog})
		return natsResult(id, name, run, len(evs), r.cfg.Backlog), err
	})
	if err != nil {
		return res, err
	}
	res.Checks = r.drainThenCheck(ctx, run, evs, accts)
	return res, nil
}
