package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/shopspring/decimal"
)

// Attempts is one money-moving HTTP request sent until it got its expected
// answer, a refusal, or its deadline: every answer it got on the way.
type Attempts struct {
	Label    string
	Wallet   string
	Amount   decimal.Decimal
	Key      string // Idempotency-Key
	Statuses []int  // every answer; 0 is no answer (transport error)
	// NoRetryAfter counts 503 answers without a Retry-After header.
	NoRetryAfter int
	Last         Response
	LastErr      error
	OK           bool // the expected status came, within the deadline
}

// FirstOK says the very first answer was the expected one.
func (a *Attempts) FirstOK() bool { return a.OK && len(a.Statuses) == 1 }

// retryable answers are the ones a careful client sends again with the
// same Idempotency-Key: no answer, 429, 5xx.
func retryable(status int) bool {
	return status == 0 || status == http.StatusTooManyRequests || status >= 500
}

// Send sends a request with an Idempotency-Key until it answers want (ok),
// answers something not worth retrying, or deadline passes.
func Send(ctx context.Context, api *API, label, method, path, key string, body any, want int, deadline time.Time) *Attempts {
	a := &Attempts{Label: label, Key: key}
	backoff := 50 * time.Millisecond
	for {
		r, err := api.Do(ctx, method, path, key, body)
		a.Last, a.LastErr = r, err
		a.Statuses = append(a.Statuses, r.Status)
		if r.Status == http.StatusServiceUnavailable && r.RetryAfter == "" {
			a.NoRetryAfter++
		}
		if err == nil && r.Status == want {
			a.OK = true
			return a
		}
		if err == nil && !retryable(r.Status) {
			return a
		}
		if time.Now().Add(backoff).After(deadline) || ctx.Err() != nil {
			return a
		}
		select {
		case <-ctx.Done():
			return a
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// Debit is one innocent debit, sent until 201 or deadline.
func Debit(ctx context.Context, api *API, wallet, key string, amount decimal.Decimal, deadline time.Time) *Attempts {
	a := Send(ctx, api, "debit", http.MethodPost, "/v1/wallets/"+wallet+"/debits", key,
		map[string]string{"amount": amount.String(), "description": "innocent debit"}, http.StatusCreated, deadline)
	a.Wallet, a.Amount = wallet, amount
	return a
}

// Resolve settles a debit whose outcome is unknown (no 201 in time): it
// sends it once more with the same key, now that the faults are over. A
// 201 — fresh or replayed — means it is applied (now, if not before); any
// other answer means it never was, because a key once applied is always
// replayed. It returns false when even that got no answer.
func (a *Attempts) Resolve(ctx context.Context, api *API) (applied, known bool) {
	if a.OK {
		return true, true
	}
	r, err := api.Do(ctx, http.MethodPost, "/v1/wallets/"+a.Wallet+"/debits", a.Key,
		map[string]string{"amount": a.Amount.String(), "description": "innocent debit"})
	if err != nil {
		return false, false
	}
	return r.Status == http.StatusCreated, true
}

// DebitLoad runs debits on wallets from workers goroutines until ctx ends:
// each a random amount of cents, each sent until 201 (see Send), none
// started after ctx ends. Every debit is kept.
type DebitLoad struct {
	mu  sync.Mutex
	All []*Attempts
}

// RunDebits starts the load; wait for the returned function to have it
// finish the debits in flight (each bounded by perOp).
func RunDebits(ctx context.Context, api *API, accts []Account, workers int, prefix string, perOp time.Duration, seed uint64) (*DebitLoad, func()) {
	d := &DebitLoad{}
	var wg sync.WaitGroup
	for w := range workers {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				a := accts[rng.IntN(len(accts))]
				amount := decimal.New(1+rng.Int64N(99), -2)
				// The op's own context: it must finish even after the
				// load's ctx ends, or its outcome is unknown.
				att := Debit(context.Background(), api, a.Wallet, fmt.Sprintf("%s-%d-%d", prefix, w, n), amount, time.Now().Add(perOp))
				d.mu.Lock()
				d.All = append(d.All, att)
				d.mu.Unlock()
				time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
			}
		})
	}
	return d, wg.Wait
}

// StatusCounts is "201×950 500×12 0×3" over every answer of ops.
func StatusCounts(ops []*Attempts) string {
	n := map[int]int{}
	for _, a := range ops {
		for _, s := range a.Statuses {
			n[s]++
		}
	}
	keys := make([]int, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var parts []string
	for _, k := range keys {
		name := fmt.Sprint(k)
		if k == 0 {
			name = "no-answer"
		}
		parts = append(parts, fmt.Sprintf("%s×%d", name, n[k]))
	}
	return strings.Join(parts, " ")
}

// IngestResult is the 202 of POST /v1/events.
type IngestResult struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Rejected   []struct {
		Index   *int   `json:"index"`
		EventID string `json:"event_id"`
		Code    string `json:"code"`
		Detail  string `json:"detail"`
	} `json:"rejected"`
}

// PostEvents sends raw events in one POST /v1/events until 202 or deadline
// (a 503 means "send the whole batch again": events are deduplicated by id).
func PostEvents(ctx context.Context, api *API, label string, raws []json.RawMessage, deadline time.Time) (*Attempts, IngestResult) {
	a := Send(ctx, api, label, http.MethodPost, "/v1/events", "", map[string]any{"events": raws}, http.StatusAccepted, deadline)
	var res IngestResult
	if a.OK {
		if err := a.Last.Decode(&res); err != nil {
			a.OK, a.LastErr = false, err
		}
	}
	return a, res
}
