package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// HTTPEvents posts innocent events in batches over POST /v1/events from
// one goroutine until ctx ends, each batch sent until 202 (a 503 asks for
// the whole batch again; ids make that safe).
type HTTPEvents struct {
	mu       sync.Mutex
	Batches  []*Attempts
	Sent     []Sent
	Rejected []string // innocent events a 202 listed as rejected
}

// RunHTTPEvents starts posting batches of size events (over accts) every
// period; the returned function waits for the batch in flight.
func RunHTTPEvents(ctx context.Context, api *API, accts []Account, evs []Event, size int, period, perBatch time.Duration) (*HTTPEvents, func()) {
	h := &HTTPEvents{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < len(evs) && ctx.Err() == nil; i += size {
			batch := evs[i:min(i+size, len(evs))]
			raws := make([]json.RawMessage, len(batch))
			for j, e := range batch {
				raws[j] = e.Encode(accts[e.Account].Customer)
			}
			a, res := PostEvents(context.Background(), api, fmt.Sprintf("events %d-%d", i, i+len(batch)-1), raws, time.Now().Add(perBatch))
			rejected := map[int]bool{}
			for _, rj := range res.Rejected {
				if rj.Index != nil {
					rejected[*rj.Index] = true
				}
			}
			h.mu.Lock()
			h.Batches = append(h.Batches, a)
			for j, e := range batch {
				h.Sent = append(h.Sent, Sent{Event: e, Attempted: true, Acked: a.OK && !rejected[j]})
				if rejected[j] {
					h.Rejected = append(h.Rejected, e.ID)
				}
			}
			h.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(period):
			}
		}
	}()
	return h, func() { <-done }
}
