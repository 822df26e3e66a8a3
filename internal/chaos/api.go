package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// API calls ledgerd's HTTP API with the admin key.
type API struct {
	Base string
	key  string
	hc   *http.Client
}

// NewAPI is a client for base with many keep-alive connections, each
// request bounded by timeout (a request to a killed ledgerd must not hang).
func NewAPI(base, key string, timeout time.Duration) *API {
	return &API{Base: base, key: key, hc: &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil, // loopback only, whatever HTTP_PROXY says
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		},
	}}
}

// Response is an answer: status, the headers the suite looks at, body.
type Response struct {
	Status     int
	RetryAfter string
	Replayed   bool
	Body       []byte
}

// Decode parses the body into v.
func (r Response) Decode(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("status %d, body %.200q: %w", r.Status, r.Body, err)
	}
	return nil
}

func (r Response) String() string {
	b := r.Body
	if len(b) > 300 {
		b = append(b[:300:300], "…"...)
	}
	return fmt.Sprintf("%d %s", r.Status, bytes.TrimSpace(b))
}

// Do sends body (nil, []byte or a value to encode as JSON) with an
// Idempotency-Key when key is not empty. The error is a transport error
// (no answer); any answer, whatever its status, is a Response.
func (a *API) Do(ctx context.Context, method, path, key string, body any) (Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			return Response{}, err
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.Base+path, rd)
	if err != nil {
		return Response{}, err
	}
	req.Header.Set("Authorization", "Bearer "+a.key)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return Response{}, err
	}
	return Response{Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After"),
		Replayed: resp.Header.Get("Idempotent-Replayed") == "true", Body: b}, nil
}

// Expect sends a request that must answer want, decoding the body into out
// (if not nil).
func (a *API) Expect(ctx context.Context, method, path string, body, out any, want int) error {
	r, err := a.Do(ctx, method, path, "", body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if r.Status != want {
		return fmt.Errorf("%s %s: %s, want %d", method, path, r, want)
	}
	if out != nil {
		return r.Decode(out)
	}
	return nil
}

// BalanceJSON is GET /v1/wallets/{id}/balance as far as the checks read it;
// amounts stay strings until decimal parses them.
type BalanceJSON struct {
	Available string `json:"available"`
	Consumed  string `json:"consumed"`
	Overage   string `json:"overage"`
	Granted   string `json:"granted"`
	Held      string `json:"held"`
}

// Balance reads a wallet's balance.
func (a *API) Balance(ctx context.Context, wallet string) (BalanceJSON, error) {
	var b BalanceJSON
	err := a.Expect(ctx, http.MethodGet, "/v1/wallets/"+wallet+"/balance", nil, &b, http.StatusOK)
	return b, err
}

// RejectedEvent is one row of GET /v1/events/rejected.
type RejectedEvent struct {
	EventID    string `json:"event_id"`
	CustomerID string `json:"customer_id"`
	Source     string `json:"source"`
	Code       string `json:"code"`
	Detail     string `json:"detail"`
	Raw        string `json:"raw"`
}

// Rejected lists every recorded rejected event (all pages).
func (a *API) Rejected(ctx context.Context) ([]RejectedEvent, error) {
	var all []RejectedEvent
	cursor := ""
	for range 1000 {
		path := "/v1/events/rejected?limit=500"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		var page struct {
			Data       []RejectedEvent `json:"data"`
			NextCursor string          `json:"next_cursor"`
		}
		if err := a.Expect(ctx, http.MethodGet, path, nil, &page, http.StatusOK); err != nil {
			return all, err
		}
		all = append(all, page.Data...)
		if page.NextCursor == "" {
			return all, nil
		}
		cursor = page.NextCursor
	}
	return all, fmt.Errorf("rejected events: more than 1000 pages")
}
