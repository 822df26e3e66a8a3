package client

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestRetries: 5xx and dropped connections are retried with the same
// Idempotency-Key; 4xx never are.
func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		statuses []int // answers in turn; 0 drops the connection
		wantErr  int   // 0: success
		calls    int
	}{
		{"5xx then ok", []int{503, 500, 201}, 0, 3},
		{"dropped then ok", []int{0, 201}, 0, 2},
		{"4xx once", []int{409, 201}, 409, 1},
		{"402 once", []int{402}, 402, 1},
		{"gives up", []int{500, 500, 500, 500, 500}, 500, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var keys []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				n := len(keys)
				keys = append(keys, r.Header.Get("Idempotency-Key"))
				mu.Unlock()
				st := tc.statuses[n]
				if st == 0 {
					hj, _ := w.(http.Hijacker)
					conn, _, _ := hj.Hijack()
					conn.Close()
					return
				}
				if st >= 300 {
					w.Header().Set("Content-Type", "application/problem+json")
					w.WriteHeader(st)
					w.Write([]byte(`{"status":` + strconv.Itoa(st) + `,"code":"c","detail":"d","errors":[{"field":"amount","detail":"bad"}]}`))
					return
				}
				w.WriteHeader(st)
				w.Write([]byte(`{"entry_id":"x","amount":"1.10"}`))
			}))
			defer srv.Close()
			var retried int
			c := New(srv.URL, "k", WithBackoff(time.Millisecond), WithOnRetry(func(method, path string, attempt int, err error) {
				retried++
				if method != "POST" || path != "/v1/wallets/w/debits" || attempt != retried || err == nil {
					t.Errorf("retry hook: %s %s attempt %d (want %d) err %v", method, path, attempt, retried, err)
				}
			}))
			d, err := c.Debit(context.Background(), "w", Debit{Amount: "1.10"})
			var e *Error
			switch {
			case tc.wantErr == 0 && (err != nil || d.Amount != "1.10"):
				t.Fatalf("got %+v %v", d, err)
			case tc.wantErr != 0 && (!errors.As(err, &e) || e.Status != tc.wantErr || e.Code != "c" || len(e.Fields) != 1):
				t.Fatalf("got %#v, want *Error %d", err, tc.wantErr)
			}
			if len(keys) != tc.calls || retried != tc.calls-1 {
				t.Fatalf("%d calls and %d retries, want %d calls", len(keys), retried, tc.calls)
			}
			for _, k := range keys {
				if k == "" || k != keys[0] {
					t.Fatalf("keys %q: want one non-empty key", keys)
				}
			}
		})
	}
}

func TestErrorHelpers(t *testing.T) {
	for _, tc := range []struct {
		status              int
		insuff, conf, valid bool
	}{{402, true, false, false}, {409, false, true, false}, {422, false, false, true}, {404, false, false, false}} {
		err := error(&Error{Status: tc.status})
		if IsInsufficientCredits(err) != tc.insuff || IsConflict(err) != tc.conf || IsValidation(err) != tc.valid {
			t.Errorf("%d: helpers disagree", tc.status)
		}
	}
	if IsConflict(errors.New("x")) {
		t.Error("plain error is a conflict")
	}
}

func sign(key []byte, id, ts string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestVerifyWebhook(t *testing.T) {
	key, old := []byte("0123456789abcdef0123456789abcdef"), []byte("another key of thirty-two bytes!")
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"type":"wallet.low_balance"}`)
	ts := strconv.FormatInt(now.Unix(), 10)
	h := func(id, ts, sig string) http.Header {
		return http.Header{"Webhook-Id": {id}, "Webhook-Timestamp": {ts}, "Webhook-Signature": {sig}}
	}
	for _, tc := range []struct {
		name   string
		secret string
		hdr    http.Header
		body   []byte
		want   error
	}{
		{"valid", secret, h("msg_1", ts, sign(key, "msg_1", ts, body)), body, nil},
		{"second of two signatures", secret, h("msg_1", ts, sign(old, "msg_1", ts, body)+" "+sign(key, "msg_1", ts, body)), body, nil},
		{"altered body", secret, h("msg_1", ts, sign(key, "msg_1", ts, body)), []byte(`{}`), ErrWebhookSignature},
		{"other id", secret, h("msg_2", ts, sign(key, "msg_1", ts, body)), body, ErrWebhookSignature},
		{"old timestamp", secret, h("msg_1", "1699999000", sign(key, "msg_1", "1699999000", body)), body, ErrWebhookTimestamp},
		{"no headers", secret, http.Header{}, body, ErrWebhookHeaders},
		{"no prefix", base64.StdEncoding.EncodeToString(key), h("msg_1", ts, sign(key, "msg_1", ts, body)), body, ErrWebhookSecret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := verifyWebhookAt(tc.secret, tc.hdr, tc.body, 0, now); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}
