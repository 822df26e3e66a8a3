// Package client is a small Go client for the credits ledger's HTTP API,
// for the apps that spend credits: debits, holds (reserve, capture, void),
// balances, usage events and the verification of the webhooks the ledger
// sends. It depends on the standard library only, so an app importing it
// pulls in neither the server nor its database driver; publishing events
// over NATS lives in client/natspub, which adds nats.go.
//
// Amounts are exact decimal strings ("12.50"), never floats, as the API
// sends and takes them.
//
// Writes carry an Idempotency-Key (the caller's, or one generated per call)
// and are retried with the same key after a network error or a 5xx, with
// exponential backoff: the ledger applies a key once, so a retry after a
// lost answer returns the first result instead of charging twice. 4xx
// answers are never retried: they are returned as *Error.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls one ledger with one API key. It is safe for concurrent use.
type Client struct {
	base    string
	key     string
	http    *http.Client
	retries int
	backoff time.Duration
	onRetry func(method, path string, attempt int, err error)
}

// Option configures New.
type Option func(*Client)

// WithHTTPClient sets the http.Client used (default: one with a 30 s
// timeout).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithRetries sets how many times a failed write or read is tried again
// after a network error or a 5xx (default 3; 0 disables retries).
func WithRetries(n int) Option { return func(c *Client) { c.retries = n } }

// WithBackoff sets the wait before the first retry; each next wait doubles
// (default 200 ms).
func WithBackoff(d time.Duration) Option { return func(c *Client) { c.backoff = d } }

// WithOnRetry calls f before each retry with the request, the attempt
// about to be made (1 for the first retry) and the error that caused it:
// for logs and counters.
func WithOnRetry(f func(method, path string, attempt int, err error)) Option {
	return func(c *Client) { c.onRetry = f }
}

// New makes a client for the ledger at baseURL ("http://localhost:8080")
// using the API key key.
func New(baseURL, key string, opts ...Option) *Client {
	c := &Client{
		base:    strings.TrimRight(baseURL, "/"),
		key:     key,
		http:    &http.Client{Timeout: 30 * time.Second},
		retries: 3,
		backoff: 200 * time.Millisecond,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// NewIdempotencyKey is a random key, as the client makes for a write whose
// caller gave none.
func NewIdempotencyKey() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails: crypto/rand aborts the program if it cannot read
	return "cl_" + hex.EncodeToString(b)
}

// do sends one request (retrying as the package says) and decodes a 2xx
// answer's JSON into out (unless nil). key is the Idempotency-Key for
// writes; "" makes one for POSTs.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, key string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("client: encode request: %w", err)
		}
	}
	if method == http.MethodPost && key == "" {
		key = NewIdempotencyKey()
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	wait := c.backoff
	for attempt := 0; ; attempt++ {
		err := c.once(ctx, method, u, key, body, out)
		if err == nil || attempt >= c.retries || !retryable(err) {
			return err
		}
		if ra := retryAfter(err); ra > wait {
			wait = ra
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		wait *= 2
		if c.onRetry != nil {
			c.onRetry(method, path, attempt+1, err)
		}
	}
}

func (c *Client) once(ctx context.Context, method, u, key string, body []byte, out any) error {
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &netError{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return &netError{err: err}
	}
	if resp.StatusCode >= 300 {
		return newError(resp, b)
	}
	if out == nil || len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("client: %s %s: decode answer: %w", method, u, err)
	}
	return nil
}

// netError is a failure to get an answer at all: the request may or may
// not have been applied, so it is sent again with the same key.
type netError struct{ err error }

func (e *netError) Error() string { return "client: " + e.err.Error() }
func (e *netError) Unwrap() error { return e.err }

func retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne *netError
	if errors.As(err, &ne) {
		return true
	}
	var e *Error
	return errors.As(err, &e) && e.Status >= 500
}

func retryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

func parseRetryAfter(h string) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && s > 0 && s < 3600 {
		return time.Duration(s) * time.Second
	}
	return 0
}
