// Command ai-app is an example of an "AI app" paying for model calls with
// ledger credits through package client: before each call it reserves
// (holds) the worst case, calls the model, then captures what the call
// really cost and releases the rest, and prints the balance.
//
//	make run                      # in another shell: the ledger
//	go run ./examples/ai-app      # this app
//
// It reads LEDGER_URL (default http://localhost:8080) and LEDGER_KEY
// (default: the admin key `make run` keeps in $LEDGER_DATA_DIR/admin.key).
// The first run makes the customer "ai-app-demo" and a wallet with 10
// credits; each run spends a little of them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/client"
)

// pricePerToken is what one token costs in credits: exact decimals, never
// floats.
var pricePerToken = decimal.RequireFromString("0.0004")

const customerID = "ai-app-demo"

func main() {
	prompt := flag.String("prompt", "Write a haiku about double-entry bookkeeping.", "what to ask the model")
	maxTokens := flag.Int64("max-tokens", 2000, "the most tokens the model may use: the reservation's size")
	calls := flag.Int("calls", 3, "model calls to make")
	flag.Parse()
	if flag.NArg() > 0 || *maxTokens < 1 || *calls < 1 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, *prompt, *maxTokens, *calls); err != nil {
		fmt.Fprintln(os.Stderr, "ai-app:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, prompt string, maxTokens int64, calls int) error {
	key, err := apiKey()
	if err != nil {
		return err
	}
	c := client.New(envOr("LEDGER_URL", "http://localhost:8080"), key)
	walletID, err := setUp(ctx, c)
	if err != nil {
		return err
	}
	for i := range calls {
		// 1. Reserve the worst case, so that a call the customer cannot
		// pay for is refused before the model runs.
		worst := pricePerToken.Mul(decimal.NewFromInt(maxTokens))
		hold, err := c.Hold(ctx, walletID, client.HoldRequest{Amount: worst.String()})
		if client.IsInsufficientCredits(err) {
			fmt.Printf("call %d: refused, the wallet cannot cover the worst case of %s credits (top it up or void holds)\n", i+1, worst)
			break
		}
		if err != nil {
			return fmt.Errorf("reserve: %w", err)
		}
		// 2. Call the model.
		tokens, answer, err := fakeModel(ctx, fmt.Sprintf("%s (#%d)", prompt, i+1), maxTokens)
		if err != nil {
			// Nothing to charge: release the reservation.
			if _, verr := c.Void(ctx, hold.ID, ""); verr != nil {
				return errors.Join(err, verr)
			}
			return err
		}
		// 3. Capture what the call cost; the rest of the hold goes back.
		cost := pricePerToken.Mul(decimal.NewFromInt(tokens))
		if _, err := c.Capture(ctx, hold.ID, cost.String(), "capture-"+hold.ID); err != nil {
			return fmt.Errorf("capture: %w", err)
		}
		fmt.Printf("call %d: %q\n        reserved %s, used %d tokens, charged %s credits\n", i+1, answer, worst, tokens, cost)
	}
	// 4. The balance after the calls.
	b, err := c.Balance(ctx, walletID)
	if err != nil {
		return err
	}
	fmt.Printf("balance of %s: %s %s available, %s held, %s consumed so far\n", customerID, b.Available, b.Asset, b.Held, b.Consumed)
	return nil
}

// setUp makes the demo customer and its wallet with 10 credits on the
// first run, and finds them on later ones.
func setUp(ctx context.Context, c *client.Client) (string, error) {
	if _, err := c.CreateCustomer(ctx, client.Customer{ID: customerID, Name: "AI app demo"}); err != nil && !client.IsConflict(err) {
		return "", fmt.Errorf("customer: %w", err)
	}
	w, err := c.CreateWallet(ctx, customerID, "CREDITS", "block")
	if client.IsConflict(err) {
		ws, err := c.Wallets(ctx, customerID)
		if err != nil {
			return "", err
		}
		for _, x := range ws {
			if x.Asset == "CREDITS" {
				return x.ID, nil
			}
		}
		return "", errors.New("the demo customer has no CREDITS wallet")
	}
	if err != nil {
		return "", fmt.Errorf("wallet: %w", err)
	}
	// A fixed idempotency key: running the example twice grants once.
	if _, err := c.AddGrant(ctx, w.ID, client.Grant{IdempotencyKey: "ai-app-demo-welcome", Amount: "10", Kind: "promotional"}); err != nil {
		return "", fmt.Errorf("grant: %w", err)
	}
	fmt.Printf("made customer %s with wallet %s and 10 welcome credits\n", customerID, w.ID)
	return w.ID, nil
}

// fakeModel stands in for a language model: it "answers" after a short
// while and says how many tokens it used (never more than maxTokens),
// derived from the prompt so runs are repeatable.
func fakeModel(ctx context.Context, prompt string, maxTokens int64) (int64, string, error) {
	select {
	case <-ctx.Done():
		return 0, "", ctx.Err()
	case <-time.After(50 * time.Millisecond):
	}
	h := fnv.New32a()
	h.Write([]byte(prompt))
	tokens := min(int64(200+h.Sum32()%800), maxTokens)
	return tokens, "Debits on the left, / credits on the right; / the sum is always zero.", nil
}

// apiKey is LEDGER_KEY, else the admin key `make run` (or ledgerd) keeps in
// the data dir.
func apiKey() (string, error) {
	if k := os.Getenv("LEDGER_KEY"); k != "" {
		return k, nil
	}
	path := filepath.Join(envOr("LEDGER_DATA_DIR", "data"), "admin.key")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("no LEDGER_KEY and no %s (start the ledger with `make run` first): %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
