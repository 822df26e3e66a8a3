package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/creditledger/creditledger/api"
	"github.com/creditledger/creditledger/api/problem"
	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/wallet"
)

// The database goes away: every endpoint answers 503 with Retry-After (it
// answered 500 "internal" on debits and reads), the failures are logged
// once per interval rather than once per request, and everything works
// again when the database is back.
func TestDatabaseOutageAnswers503(t *testing.T) {
	testdb.Require(t, dsn)
	proxy := testdb.NewProxy(t, dsn)
	e := newEnvOn(t, proxy.URL(dsn), func(c *api.Config) {
		l, err := ledger.New(c.DB, ledger.Options{Modules: []ledger.Module{metering.Module(), wallet.Module()}, BatchTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = l.Close(ctx)
		})
		ws := wallet.NewService(l)
		c.Routes = append(api.WalletRoutes(ws), api.MeteringRoutes(metering.NewService(l, ws, nil))...)
	})
	cus := "outage-" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	if r := e.do(t, "POST", "/v1/customers", e.admin, map[string]any{"id": cus}); r.status != http.StatusCreated {
		t.Fatalf("customer: %d %s", r.status, r.body)
	}
	r := e.do(t, "POST", "/v1/wallets", e.admin, map[string]any{"customer_id": cus, "asset": "CREDITS", "overage_policy": "allow"})
	if r.status != http.StatusCreated {
		t.Fatalf("wallet: %d %s", r.status, r.body)
	}
	wallet := r.json(t)["id"].(string)
	// A key made now and never used: its first request needs the database.
	fresh, _, err := e.keys.Create(context.Background(), apikey.NewKey{Scope: apikey.Read, Name: "fresh"})
	if err != nil {
		t.Fatal(err)
	}

	proxy.Cut()
	requests := []struct {
		method, path, key string
		body              any
	}{
		{"GET", "/v1/wallets/" + wallet + "/balance", e.admin, nil},
		{"POST", "/v1/wallets/" + wallet + "/debits", e.admin, map[string]any{"amount": "1"}},
		{"POST", "/v1/events", e.admin, map[string]any{"events": []map[string]any{
			{"event_id": "outage-1-" + cus, "customer_id": cus, "event_name": "x"}}}},
		{"GET", "/v1/customers/" + cus, fresh, nil},
	}
	for range 3 {
		for _, q := range requests {
			r := e.do(t, q.method, q.path, q.key, q.body)
			wantProblem(t, r, http.StatusServiceUnavailable, problem.Unavailable)
			if r.header.Get("Retry-After") == "" {
				t.Fatalf("%s %s: 503 without Retry-After", q.method, q.path)
			}
		}
	}
	if n := strings.Count(e.logs.String(), `msg="request failed: unavailable"`); n != 1 {
		t.Errorf("%d log lines for 12 failed requests in one interval, want 1:\n%s", n, e.logs.String())
	}

	proxy.Restore()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := e.do(t, "POST", "/v1/wallets/"+wallet+"/debits", e.admin, map[string]any{"amount": "1"})
		if r.status == http.StatusCreated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the database came back: %d %s", r.status, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Requests that go well are logged at DEBUG: one line per request at INFO
// filled 27 MB in one session. Server errors are logged at WARN.
func TestRequestLogLevels(t *testing.T) {
	e := newEnv(t, nil)
	for range 5 {
		if r := e.do(t, "GET", "/v1/whoami", e.admin, nil); r.status != http.StatusOK {
			t.Fatalf("whoami: %d", r.status)
		}
	}
	logs := e.logs.String()
	if strings.Count(logs, `msg="http request"`) != 5 || strings.Contains(logs, `level=INFO msg="http request"`) {
		t.Fatalf("request lines are not at DEBUG:\n%s", logs)
	}
}
