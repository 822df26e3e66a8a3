package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// Customer is a customer of the ledger.
type Customer struct {
	ID        string          `json:"id"`
	Name      string          `json:"name,omitempty"`
	Email     string          `json:"email,omitempty"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	CreatedAt time.Time       `json:"created_at,omitzero"`
}

// Wallet is a customer's balance in one asset.
type Wallet struct {
	ID            string    `json:"id"`
	CustomerID    string    `json:"customer_id"`
	Asset         string    `json:"asset"`
	OveragePolicy string    `json:"overage_policy,omitempty"`
	OverageLimit  *string   `json:"overage_limit,omitempty"`
	CreatedAt     time.Time `json:"created_at,omitzero"`
}

// Balance is a wallet's balance; amounts are exact decimal strings.
type Balance struct {
	WalletID  string         `json:"wallet_id"`
	Asset     string         `json:"asset"`
	Available string         `json:"available"`
	Held      string         `json:"held"`
	Overage   string         `json:"overage"`
	Granted   string         `json:"granted"`
	Consumed  string         `json:"consumed"`
	Expired   string         `json:"expired"`
	Voided    string         `json:"voided"`
	Grants    []GrantBalance `json:"grants"`
	AsOf      time.Time      `json:"as_of"`
}

// GrantBalance is what is left of one grant.
type GrantBalance struct {
	ID        string     `json:"id"`
	Remaining string     `json:"remaining"`
	Priority  int        `json:"priority"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// Grant adds credits to a wallet.
type Grant struct {
	IdempotencyKey string          `json:"-"` // "" makes one
	Amount         string          `json:"amount"`
	Kind           string          `json:"kind"` // paid, promotional, ...
	Priority       *int            `json:"priority,omitempty"`
	ExpiresAt      *time.Time      `json:"expires_at,omitempty"`
	Description    string          `json:"description,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
}

// Debit takes an amount from a wallet.
type Debit struct {
	IdempotencyKey string          `json:"-"` // "" makes one; give your own to retry across processes
	Amount         string          `json:"amount"`
	Description    string          `json:"description,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
}

// DebitResult is what a debit did: Covered by credits, Overage posted to
// the customer's receivable, and the balance after it.
type DebitResult struct {
	EntryID string  `json:"entry_id"`
	Amount  string  `json:"amount"`
	Covered string  `json:"covered"`
	Overage string  `json:"overage"`
	Balance Balance `json:"balance"`
}

// HoldRequest reserves an amount for a later capture.
type HoldRequest struct {
	IdempotencyKey   string          `json:"-"`
	Amount           string          `json:"amount"`
	ExpiresInSeconds *int64          `json:"expires_in_seconds,omitempty"` // server default 600
	Metadata         json.RawMessage `json:"metadata,omitempty"`
}

// Hold is a reservation on a wallet.
type Hold struct {
	ID        string          `json:"id"`
	WalletID  string          `json:"wallet_id"`
	Status    string          `json:"status"` // active, captured, voided, expired
	Amount    string          `json:"amount"`
	Captured  string          `json:"captured"`
	ExpiresAt *time.Time      `json:"expires_at"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	ClosedAt  *time.Time      `json:"closed_at,omitempty"`
}

// CreateCustomer makes a customer (admin key).
func (c *Client) CreateCustomer(ctx context.Context, cu Customer) (Customer, error) {
	var out Customer
	err := c.do(ctx, http.MethodPost, "/v1/customers", nil, "", cu, &out)
	return out, err
}

// CreateWallet opens a wallet for a customer (admin key). policy is
// "block" (the server's default when "") or "allow".
func (c *Client) CreateWallet(ctx context.Context, customerID, asset, policy string) (Wallet, error) {
	var out Wallet
	in := map[string]any{"customer_id": customerID, "asset": asset}
	if policy != "" {
		in["overage_policy"] = policy
	}
	err := c.do(ctx, http.MethodPost, "/v1/wallets", nil, "", in, &out)
	return out, err
}

// Wallets lists a customer's wallets.
func (c *Client) Wallets(ctx context.Context, customerID string) ([]Wallet, error) {
	var out struct {
		Data []Wallet `json:"data"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/customers/"+url.PathEscape(customerID)+"/wallets", nil, "", nil, &out)
	return out.Data, err
}

// AddGrant adds credits to a wallet (admin key).
func (c *Client) AddGrant(ctx context.Context, walletID string, g Grant) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.do(ctx, http.MethodPost, "/v1/wallets/"+url.PathEscape(walletID)+"/grants", nil, g.IdempotencyKey, g, &out)
	return out, err
}

// Debit takes d.Amount from a wallet. A wallet that cannot pay answers
// 402: IsInsufficientCredits(err).
func (c *Client) Debit(ctx context.Context, walletID string, d Debit) (DebitResult, error) {
	var out DebitResult
	err := c.do(ctx, http.MethodPost, "/v1/wallets/"+url.PathEscape(walletID)+"/debits", nil, d.IdempotencyKey, d, &out)
	return out, err
}

// Hold reserves h.Amount of a wallet until it is captured, voided or
// expires.
func (c *Client) Hold(ctx context.Context, walletID string, h HoldRequest) (Hold, error) {
	var out Hold
	err := c.do(ctx, http.MethodPost, "/v1/wallets/"+url.PathEscape(walletID)+"/holds", nil, h.IdempotencyKey, h, &out)
	return out, err
}

// Capture debits amount of a hold and releases the rest; amount "" takes
// the whole hold. key "" makes an idempotency key.
func (c *Client) Capture(ctx context.Context, holdID, amount, key string) (Hold, error) {
	in := map[string]string{}
	if amount != "" {
		in["amount"] = amount
	}
	var out Hold
	err := c.do(ctx, http.MethodPost, "/v1/holds/"+url.PathEscape(holdID)+"/capture", nil, key, in, &out)
	return out, err
}

// Void releases a hold without debiting anything. key "" makes an
// idempotency key.
func (c *Client) Void(ctx context.Context, holdID, key string) (Hold, error) {
	var out Hold
	err := c.do(ctx, http.MethodPost, "/v1/holds/"+url.PathEscape(holdID)+"/void", nil, key, struct{}{}, &out)
	return out, err
}

// Balance is a wallet's balance now.
func (c *Client) Balance(ctx context.Context, walletID string) (Balance, error) {
	var out Balance
	err := c.do(ctx, http.MethodGet, "/v1/wallets/"+url.PathEscape(walletID)+"/balance", nil, "", nil, &out)
	return out, err
}
