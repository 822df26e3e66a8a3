package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"

	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/ledger"
)

// What every scenario's setup creates and its events use.
const (
	MeterCode = "chaos_tokens"
	EventName = "completion"
	Asset     = "CREDITS"
	UnitPrice = "0.000003" // per token
)

// Price is UnitPrice as a decimal.
var Price = decimal.RequireFromString(UnitPrice)

// Account is one customer and its CREDITS wallet.
type Account struct {
	Customer string
	Wallet   string
	Grant    decimal.Decimal // its one paid grant
}

// Shard is the poster shard the customer's operations go to (ledgerd runs
// with PosterShards): customers on one shard share a batch and the shard's
// row of every hot account.
func Shard(customer string) int { return int(ledger.ShardOf(customer) % PosterShards) }

// CreateMeterAndPrice makes the sum meter over property "tokens" and its
// per-unit price.
func CreateMeterAndPrice(ctx context.Context, api *API) error {
	if err := api.Expect(ctx, http.MethodPost, "/v1/meters", map[string]any{
		"code": MeterCode, "event_name": EventName, "aggregation": "sum", "property": "tokens",
	}, nil, http.StatusCreated); err != nil {
		return err
	}
	return api.Expect(ctx, http.MethodPost, "/v1/prices", map[string]any{
		"meter_code": MeterCode, "asset": Asset, "model": "per_unit", "unit_price": UnitPrice,
	}, nil, http.StatusCreated)
}

// CreateAccounts makes each customer, its CREDITS wallet (overage allowed,
// so usage is never refused) and one paid grant, workers at a time. Setup
// runs before any fault: any error is the test's.
func CreateAccounts(ctx context.Context, api *API, customers []string, grant func(i int) string, workers int) ([]Account, error) {
	accts := make([]Account, len(customers))
	err := Parallel(ctx, len(customers), workers, func(ctx context.Context, i int) error {
		c := customers[i]
		if err := api.Expect(ctx, http.MethodPost, "/v1/customers", map[string]string{"id": c, "name": "Customer " + c},
			nil, http.StatusCreated); err != nil {
			return err
		}
		var w struct {
			ID string `json:"id"`
		}
		if err := api.Expect(ctx, http.MethodPost, "/v1/wallets", map[string]string{
			"customer_id": c, "asset": Asset, "overage_policy": "allow",
		}, &w, http.StatusCreated); err != nil {
			return err
		}
		g := grant(i)
		r, err := api.Do(ctx, http.MethodPost, "/v1/wallets/"+w.ID+"/grants", "setup-grant-"+w.ID,
			map[string]string{"amount": g, "kind": "paid", "description": "setup"})
		if err != nil {
			return fmt.Errorf("grant of %s: %w", c, err)
		}
		if r.Status != http.StatusCreated {
			return fmt.Errorf("grant of %s: %s", c, r)
		}
		accts[i] = Account{Customer: c, Wallet: w.ID, Grant: decimal.RequireFromString(g)}
		return nil
	})
	return accts, err
}

// Customers is n customer ids with a prefix.
func Customers(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%04d", prefix, i)
	}
	return out
}

// Event is one innocent usage event before it is encoded.
type Event struct {
	ID      string
	Account int // index into the scenario's accounts
	Tokens  int64
}

// MakeEvents is n events over accts accounts, customers and token counts
// (1 to 1,000) drawn from rng; ids are prefix-<i>.
func MakeEvents(rng *rand.Rand, prefix string, n, accts int) []Event {
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = Event{ID: fmt.Sprintf("%s-%06d", prefix, i), Account: rng.IntN(accts), Tokens: 1 + rng.Int64N(1000)}
	}
	return evs
}

// Sent is one innocent event and what the broker or the API said to it.
type Sent struct {
	Event     Event
	Acked     bool // the stream stored it (NATS) or a 202 accepted it (HTTP): it must be applied
	Attempted bool // it was sent at least once
}

// WireEvent is an event as ledgerd reads it.
type WireEvent struct {
	EventID    string         `json:"event_id"`
	CustomerID string         `json:"customer_id"`
	EventName  string         `json:"event_name"`
	Properties map[string]any `json:"properties"`
}

// Encode is the event's JSON for customer.
func (e Event) Encode(customer string) []byte {
	b, err := json.Marshal(WireEvent{EventID: e.ID, CustomerID: customer, EventName: EventName,
		Properties: map[string]any{"tokens": e.Tokens}})
	if err != nil {
		panic(err)
	}
	return b
}

// Charge is what the event costs: exact, never through a float.
func (e Event) Charge() decimal.Decimal { return Price.Mul(decimal.NewFromInt(e.Tokens)) }

// Expectation is what each wallet must show: its grant and the sum of
// everything it was charged (events applied, debits that succeeded). With
// overage allowed and only charges, the order does not matter: consumed is
// min(charged, grant), overage the rest, available grant − consumed.
type Expectation struct {
	mu      sync.Mutex
	grant   map[string]decimal.Decimal
	charged map[string]decimal.Decimal
}

// NewExpectation starts from the accounts' grants.
func NewExpectation(accts []Account) *Expectation {
	x := &Expectation{grant: map[string]decimal.Decimal{}, charged: map[string]decimal.Decimal{}}
	for _, a := range accts {
		x.grant[a.Wallet] = a.Grant
	}
	return x
}

// Charge adds an amount charged to wallet.
func (x *Expectation) Charge(wallet string, amount decimal.Decimal) {
	x.mu.Lock()
	x.charged[wallet] = x.charged[wallet].Add(amount)
	x.mu.Unlock()
}

// AddGrant adds a grant that was made after setup.
func (x *Expectation) AddGrant(wallet string, amount decimal.Decimal) {
	x.mu.Lock()
	x.grant[wallet] = x.grant[wallet].Add(amount)
	x.mu.Unlock()
}

// Mismatch says how a wallet's balance differs from the expectation, or ""
// when consumed, overage and available are all exact; over says the wallet
// shows more charged (consumed + overage) than it was.
func (x *Expectation) Mismatch(wallet string, b BalanceJSON) (how string, over bool) {
	x.mu.Lock()
	g, c := x.grant[wallet], x.charged[wallet]
	x.mu.Unlock()
	consumed := decimal.Min(c, g)
	want := map[string]decimal.Decimal{"consumed": consumed, "overage": c.Sub(consumed), "available": g.Sub(consumed)}
	got := map[string]decimal.Decimal{}
	for k, v := range map[string]string{"consumed": b.Consumed, "overage": b.Overage, "available": b.Available} {
		d, err := decimal.NewFromString(v)
		if err != nil {
			return fmt.Sprintf("%s %q is not a decimal", k, v), false
		}
		got[k] = d
	}
	for _, k := range []string{"consumed", "overage", "available"} {
		if !got[k].Equal(want[k]) {
			return fmt.Sprintf("consumed %s overage %s available %s; want %s %s %s (charged %s, grant %s)",
					b.Consumed, b.Overage, b.Available, want["consumed"], want["overage"], want["available"], c, g),
				got["consumed"].Add(got["overage"]).GreaterThan(c)
		}
	}
	return "", false
}

// Parallel calls f(ctx, i) for every i in [0, n) from at most workers
// goroutines. The first error cancels the rest and is returned.
func Parallel(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				if err := f(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}
