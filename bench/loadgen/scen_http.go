package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// ingestAnswer is POST /v1/events' 202 body.
type ingestAnswer struct {
	Accepted   int   `json:"accepted"`
	Duplicates int   `json:"duplicates"`
	Rejected   []any `json:"rejected"`
}

// httpIngest is scenario 3: evs through POST /v1/events in batches of
// cfg.HTTPBatch from cfg.HTTPCallers callers. A 202 means the batch is
// committed. The time bound stops new calls, never one in flight.
func (r *runner) httpIngest(ctx context.Context, evs []event, accts []account) (result, error) {
	res := result{Scenario: "3", Name: fmt.Sprintf("HTTP ingest, %s events over %s customers, batches of %s",
		thousands(len(evs)), thousands(len(accts)), thousands(r.cfg.HTTPBatch)), Unit: "events/s", Planned: len(evs)}
	// Bodies are built before the clock starts.
	var batches [][]event
	var bodies [][]byte
	for lo := 0; lo < len(evs); lo += r.cfg.HTTPBatch {
		b := evs[lo:min(lo+r.cfg.HTTPBatch, len(evs))]
		var buf bytes.Buffer
		buf.WriteString(`{"events":[`)
		for i, e := range b {
			if i > 0 {
				buf.WriteByte(',')
			}
			enc, err := encodeEvent(e, accts[e.Account].Customer)
			if err != nil {
				return res, err
			}
			buf.Write(enc)
		}
		buf.WriteString(`]}`)
		batches = append(batches, b)
		bodies = append(bodies, buf.Bytes())
	}

	type outcome struct {
		lat     []time.Duration // every call, retries included
		applied bool
		err     error
	}
	outcomes := make([]outcome, len(batches))
	start := time.Now()
	// A failed batch is an outcome, not an error: the other callers go on.
	sent, err := parallelUntil(ctx, len(batches), r.cfg.HTTPCallers, start.Add(r.cfg.Timeout), func(ctx context.Context, i int) error {
		outcomes[i].lat, outcomes[i].err = r.postBatch(ctx, bodies[i], len(batches[i]))
		outcomes[i].applied = outcomes[i].err == nil
		return nil
	})
	took := time.Since(start)
	if err != nil {
		return res, err
	}

	var lat []time.Duration
	for i, o := range outcomes[:sent] {
		lat = append(lat, o.lat...)
		if o.applied {
			r.exp.addEvents(batches[i], accts, r.price)
			res.Done += len(batches[i])
			continue
		}
		res.Errors++
		if len(res.Notes) < 3 {
			res.Notes = append(res.Notes, "batch failed: "+o.err.Error())
		}
		// Which of its events applied is unknown.
		for _, e := range batches[i] {
			r.exp.uncertain[accts[e.Account].Wallet] = true
		}
	}
	ls := summarize(lat)
	res.Latency = &ls
	res.Seconds, res.Rate = took.Seconds(), rate(res.Done, took)
	res.Complete = sent == len(batches) && res.Errors == 0
	if sent < len(batches) {
		res.Notes = append(res.Notes, fmt.Sprintf("time bound reached: %s of %s batches sent", thousands(sent), thousands(len(batches))))
	}
	res.Notes = append(res.Notes, fmt.Sprintf("p50/p99 are per call of %s events, %d callers", thousands(r.cfg.HTTPBatch), r.cfg.HTTPCallers))
	return res, nil
}

// postBatch sends one batch until it is accepted, at most 5 times: a 503
// or a lost connection leaves the batch's fate unknown, and sending it
// again is safe because events are deduplicated by id.
func (r *runner) postBatch(ctx context.Context, body []byte, n int) ([]time.Duration, error) {
	var lat []time.Duration
	var err error
	for attempt := range 5 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return lat, ctx.Err()
			case <-time.After(time.Second):
			}
		}
		var ans ingestAnswer
		t0 := time.Now()
		_, err = r.api.call(ctx, http.MethodPost, "/v1/events", body, &ans, http.StatusAccepted)
		lat = append(lat, time.Since(t0))
		var se *statusError
		switch {
		case err == nil && (ans.Accepted+ans.Duplicates != n || len(ans.Rejected) > 0):
			return lat, fmt.Errorf("accepted %d, duplicates %d, rejected %d of %d", ans.Accepted, ans.Duplicates, len(ans.Rejected), n)
		case err == nil:
			return lat, nil
		case errors.As(err, &se) && se.Status != http.StatusServiceUnavailable:
			return lat, err // a refusal: sending it again would be refused again
		}
	}
	return lat, err
}
