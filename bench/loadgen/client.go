package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// newHTTPClient is one client for everything: many keep-alive connections
// to one loopback host, so 64 debit workers and the read pool never wait for
// a connection or pay a handshake per request.
func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout: 2 * time.Minute, // an ingest call of 1,000 events can be slow; none should hang
		Transport: &http.Transport{
			Proxy:               nil, // loopback only, whatever HTTP_PROXY says
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        512,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// apiClient calls ledgerd's API with the admin key.
type apiClient struct {
	base string // http://127.0.0.1:port
	key  string
	hc   *http.Client
}

// statusError is a response with an unexpected status.
type statusError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: status %d: %s", e.Method, e.Path, e.Status, e.Body)
}

// call sends body (nil, []byte, or a value to encode) and, for a status in
// want, decodes the answer into out (if not nil). Any other status is a
// *statusError.
func (c *apiClient) call(ctx context.Context, method, path string, body any, out any, want ...int) (int, error) {
	return c.callKey(ctx, "", method, path, body, out, want...)
}

// callKey is call with an Idempotency-Key (none if key is empty), which
// makes sending a money-moving request again safe.
func (c *apiClient) callKey(ctx context.Context, key, method, path string, body any, out any, want ...int) (int, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			return 0, fmt.Errorf("%s %s: encode: %w", method, path, err)
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	ok := false
	for _, w := range want {
		ok = ok || resp.StatusCode == w
	}
	if !ok {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return resp.StatusCode, &statusError{Method: method, Path: path, Status: resp.StatusCode, Body: string(bytes.TrimSpace(b))}
	}
	if out == nil {
		// Read to the end so the connection goes back to the pool.
		_, err = io.Copy(io.Discard, resp.Body)
	} else {
		err = json.NewDecoder(resp.Body).Decode(out)
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	return resp.StatusCode, nil
}

// balanceJSON is the part of GET /v1/wallets/{id}/balance the checks read;
// amounts stay strings until decimal parses them.
type balanceJSON struct {
	Consumed string `json:"consumed"`
	Overage  string `json:"overage"`
}

func (c *apiClient) balance(ctx context.Context, wallet string) (balanceJSON, error) {
	var b balanceJSON
	_, err := c.call(ctx, http.MethodGet, "/v1/wallets/"+wallet+"/balance", nil, &b, http.StatusOK)
	return b, err
}
