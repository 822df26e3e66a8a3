package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/shopspring/decimal"
)

// What the setup creates and the events use.
const (
	meterCode    = "bench_tokens"
	eventName    = "completion"
	asset        = "CREDITS"
	unitPriceStr = "0.000002" // per token
	grantAmount  = "1000000"  // enough that no scenario reaches overage
)

// account is one customer and its CREDITS wallet.
type account struct {
	Customer string
	Wallet   string
}

// event is one usage event of a run, before it is encoded.
type event struct {
	ID      string
	Account int // index into the run's accounts
	Tokens  int64
}

// tokensFor is event i's token count: deterministic, so every wallet's
// expected charge is known without keeping what was sent.
func tokensFor(i int) int64 { return 1 + int64(i%1000) }

// makeEvents is a run's n events over accts (hot: all on accts[0]). The
// customer of each is drawn from a PCG seeded with seed, so a run is
// reproducible; prefix makes the ids unique per run, because the stream
// and the ledger remember ids across runs.
func makeEvents(prefix string, n, accts int, seed uint64) []event {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	evs := make([]event, n)
	for i := range evs {
		evs[i] = event{ID: fmt.Sprintf("%s-%07d", prefix, i), Account: rng.IntN(accts), Tokens: tokensFor(i)}
	}
	return evs
}

// wireEvent is an event as ledgerd reads it.
type wireEvent struct {
	EventID    string         `json:"event_id"`
	CustomerID string         `json:"customer_id"`
	EventName  string         `json:"event_name"`
	Properties map[string]any `json:"properties"`
}

func encodeEvent(e event, customer string) ([]byte, error) {
	return json.Marshal(wireEvent{EventID: e.ID, CustomerID: customer, EventName: eventName,
		Properties: map[string]any{"tokens": e.Tokens}})
}

// charge is what an event of tokens costs under a per-unit price: exact,
// never through a float.
func charge(unitPrice decimal.Decimal, tokens int64) decimal.Decimal {
	return unitPrice.Mul(decimal.NewFromInt(tokens))
}

// expectation is what each wallet has been charged in total (usage and
// debits) since the database was created, which is what its consumed plus
// overage must equal. Owned by the orchestrating goroutine.
type expectation struct {
	charged map[string]decimal.Decimal // by wallet id
	// uncertain wallets had a request whose outcome is unknown (a
	// transport error); their balance cannot be checked exactly.
	uncertain map[string]bool
}

func newExpectation() *expectation {
	return &expectation{charged: map[string]decimal.Decimal{}, uncertain: map[string]bool{}}
}

func (x *expectation) add(wallet string, amount decimal.Decimal) {
	x.charged[wallet] = x.charged[wallet].Add(amount)
}

// addEvents adds the charges of the first n events of evs.
func (x *expectation) addEvents(evs []event, accts []account, unitPrice decimal.Decimal) {
	for _, e := range evs {
		x.add(accts[e.Account].Wallet, charge(unitPrice, e.Tokens))
	}
}

// balanceMismatch says how a wallet's balance differs from what it was
// charged, or "" if consumed + overage equals expected exactly.
func balanceMismatch(expected decimal.Decimal, consumed, overage string) string {
	c, err := decimal.NewFromString(consumed)
	if err != nil {
		return fmt.Sprintf("consumed %q is not a decimal", consumed)
	}
	o, err := decimal.NewFromString(overage)
	if err != nil {
		return fmt.Sprintf("overage %q is not a decimal", overage)
	}
	if got := c.Add(o); !got.Equal(expected) {
		return fmt.Sprintf("consumed %s + overage %s = %s, expected %s", consumed, overage, got, expected)
	}
	return ""
}
