package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/creditledger/creditledger/client"
)

// fixture is what setup created: the spread customers and the hot one, each
// with a CREDITS wallet holding one large paid grant.
type fixture struct {
	Spread []account
	Hot    []account // one; a slice so it can stand in for Spread
	Notes  []string  // what went wrong on the way, for the report
}

func (f fixture) all() []account { return append(append([]account(nil), f.Spread...), f.Hot...) }

// setup creates the meter, the price and the accounts over the API, with
// workers requests at a time. Not timed as part of any scenario.
func setup(ctx context.Context, log *slog.Logger, api *apiClient, customers, workers, grantWorkers int, subscribed bool) (fixture, error) {
	var setupNotes []string
	if _, err := api.call(ctx, http.MethodPost, "/v1/meters", map[string]any{
		"code": meterCode, "event_name": eventName, "aggregation": "sum", "property": "tokens",
	}, nil, http.StatusCreated); err != nil {
		return fixture{}, fmt.Errorf("meter: %w", err)
	}
	// Subscribed, the default book's price is a decoy ten times the
	// plan's: the balance checks pass only if every event was priced by
	// the customer's plan.
	bookPrice := unitPriceStr
	if subscribed {
		bookPrice = decoyPriceStr
	}
	if _, err := api.call(ctx, http.MethodPost, "/v1/prices", map[string]any{
		"meter_code": meterCode, "asset": asset, "model": "per_unit", "unit_price": bookPrice,
	}, nil, http.StatusCreated); err != nil {
		return fixture{}, fmt.Errorf("price: %w", err)
	}
	var retried atomic.Int64
	// Setup goes through package client, as an app would: 5xx and lost
	// answers are sent again with the same Idempotency-Key, with backoff.
	c := client.New(api.base, api.key, client.WithHTTPClient(api.hc), client.WithRetries(4),
		client.WithOnRetry(func(string, string, int, error) { retried.Add(1) }))
	accts := make([]account, customers+1)
	for i := range customers {
		accts[i].Customer = fmt.Sprintf("c-%05d", i+1)
	}
	accts[customers].Customer = "c-hot"

	// Each worker writes only the accounts it was handed.
	err := parallel(ctx, len(accts), workers, func(ctx context.Context, i int) error {
		w, err := createWallet(ctx, c, accts[i].Customer)
		accts[i].Wallet = w
		return err
	})
	if err != nil {
		return fixture{}, err
	}
	// Grants go through the batching poster: the more arrive at once, the
	// fuller its batches and the fewer transactions commit (and conflict).
	err = parallel(ctx, len(accts), grantWorkers, func(ctx context.Context, i int) error {
		if err := addGrant(ctx, c, accts[i].Wallet); err != nil {
			return fmt.Errorf("grant for %s: %w", accts[i].Customer, err)
		}
		return nil
	})
	if err != nil {
		return fixture{}, err
	}
	if subscribed {
		if err := subscribeAll(ctx, api, accts, workers); err != nil {
			return fixture{}, err
		}
	}
	if n := retried.Load(); n > 0 {
		log.Warn("setup: requests failed with a server error and were sent again", "retries", n)
		setupNotes = append(setupNotes, fmt.Sprintf("setup: %d requests got a 5xx (or no answer) and were sent again with the same Idempotency-Key", n))
	}
	return fixture{Spread: accts[:customers], Hot: accts[customers:], Notes: setupNotes}, nil
}

// createWallet makes a customer and its wallet (usage beyond credits goes
// to overage, never refused) with package client, as an app would, and
// returns the wallet id.
func createWallet(ctx context.Context, c *client.Client, customer string) (string, error) {
	if _, err := c.CreateCustomer(ctx, client.Customer{ID: customer}); err != nil {
		return "", fmt.Errorf("customer %s: %w", customer, err)
	}
	w, err := c.CreateWallet(ctx, customer, asset, "allow")
	if err != nil {
		return "", fmt.Errorf("wallet of %s: %w", customer, err)
	}
	if w.ID == "" {
		return "", fmt.Errorf("wallet of %s: no id in the answer", customer)
	}
	return w.ID, nil
}

// addGrant gives wallet its paid grant. Under load the poster can fail a
// batch for good (retries exhausted) and answer 500; the client sends it
// again under the same Idempotency-Key, which makes that safe (its
// WithOnRetry hook counts the retries for the report).
func addGrant(ctx context.Context, c *client.Client, wallet string) error {
	_, err := c.AddGrant(ctx, wallet, client.Grant{IdempotencyKey: "loadgen-grant-" + wallet, Amount: grantAmount, Kind: "paid"})
	return err
}

// The plan of the subscribed variant, and the default book's price then.
const (
	planCode      = "bench"
	decoyPriceStr = "0.00002"
)

// subscribeAll puts every account on a plan that prices the meter at the
// price the balance checks expect (the default book has a decoy), so every
// event's price is resolved through the customer's subscription
// (overrides, plan version, default book). The credits are priced in USD,
// as a plan requires.
func subscribeAll(ctx context.Context, api *apiClient, accts []account, workers int) error {
	if _, err := api.call(ctx, http.MethodPut, "/v1/assets/"+asset, map[string]any{
		"kind": "credits", "currency": "USD", "unit_price": "0.001",
	}, nil, http.StatusOK); err != nil {
		return fmt.Errorf("asset: %w", err)
	}
	if _, err := api.call(ctx, http.MethodPost, "/v1/plans", map[string]any{
		"code": planCode, "currency": "USD", "prices": []any{map[string]any{
			"meter_code": meterCode, "asset": asset, "model": "per_unit", "unit_price": unitPriceStr,
		}},
	}, nil, http.StatusCreated); err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	return parallel(ctx, len(accts), workers, func(ctx context.Context, i int) error {
		if _, err := api.callKey(ctx, "loadgen-sub-"+accts[i].Customer, http.MethodPost, "/v1/subscriptions", map[string]any{
			"customer_id": accts[i].Customer, "plan_code": planCode,
		}, nil, http.StatusCreated); err != nil {
			return fmt.Errorf("subscription of %s: %w", accts[i].Customer, err)
		}
		return nil
	})
}
