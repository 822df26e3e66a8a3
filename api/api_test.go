package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/creditledger/creditledger/api"
	"github.com/creditledger/creditledger/api/auth"
	"github.com/creditledger/creditledger/api/metrics"
	"github.com/creditledger/creditledger/api/problem"
	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/creditledger/creditledger/ledger/ledgertest"
	"github.com/creditledger/creditledger/metering"
)

var dsn string

// After the package's tests, the whole journal they wrote must verify.
func TestMain(m *testing.M) {
	os.Exit(testdb.Main(m, &dsn, ledgertest.VerifyWith(metering.Checks()...)))
}

// env is an app on the package's test database.
type env struct {
	app     *fiber.App
	db      *pg.DB
	keys    *apikey.Store
	metrics *metrics.Metrics
	logs    *syncBuffer
	admin   string // an admin key
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newEnv builds an app; edit adjusts the Config first.
func newEnv(t *testing.T, edit func(*api.Config)) *env {
	t.Helper()
	return newEnvOn(t, dsn, edit)
}

// newEnvOn is newEnv on the database at url (a proxy to it, say).
func newEnvOn(t *testing.T, url string, edit func(*api.Config)) *env {
	t.Helper()
	testdb.Require(t, dsn)
	ctx := context.Background()
	db, err := pg.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	e := &env{db: db, keys: apikey.NewStore(db), metrics: metrics.New(), logs: &syncBuffer{}}
	e.admin, _, err = e.keys.Create(ctx, apikey.NewKey{Scope: apikey.Admin, Name: "test admin"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := api.Config{
		DB:      db,
		Log:     slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Keys:    e.keys,
		Metrics: e.metrics,
	}
	if edit != nil {
		edit(&cfg)
	}
	e.app = api.New(cfg)
	return e
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

func (e *env) do(t *testing.T, method, path, key string, body any) response {
	t.Helper()
	var rd io.Reader = http.NoBody
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := e.app.Test(req, 5000)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

// wantProblem checks that r is a problem+json response with status and code.
func wantProblem(t *testing.T, r response, status int, code problem.Code) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d\n%s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != problem.ContentType {
		t.Fatalf("Content-Type %q, want %q", ct, problem.ContentType)
	}
	p := r.json(t)
	if p["code"] != string(code) || p["status"] != float64(status) || p["type"] != problem.TypeBase+string(code) ||
		p["title"] == "" || p["detail"] == nil {
		t.Fatalf("problem %v, want code %s status %d", p, code, status)
	}
	if p["request_id"] != r.header.Get(api.HeaderRequestID) || p["request_id"] == "" {
		t.Fatalf("problem request_id %v, header %q", p["request_id"], r.header.Get(api.HeaderRequestID))
	}
	return p
}

func TestHealthz(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do(t, "GET", "/healthz", "", nil)
	if r.status != 200 || r.json(t)["status"] != "ok" {
		t.Fatalf("healthz: %d %s", r.status, r.body)
	}
}

func TestReadyz(t *testing.T) {
	t.Run("default pings the database", func(t *testing.T) {
		e := newEnv(t, nil)
		if r := e.do(t, "GET", "/readyz", "", nil); r.status != 200 {
			t.Fatalf("readyz: %d %s", r.status, r.body)
		}
	})
	t.Run("ready", func(t *testing.T) {
		e := newEnv(t, func(c *api.Config) { c.Ready = func(context.Context) error { return nil } })
		if r := e.do(t, "GET", "/readyz", "", nil); r.status != 200 || r.json(t)["status"] != "ok" {
			t.Fatalf("readyz: %d %s", r.status, r.body)
		}
	})
	t.Run("dependency down", func(t *testing.T) {
		e := newEnv(t, func(c *api.Config) {
			c.Ready = api.Readiness(
				api.Check{Name: "database", Func: func(ctx context.Context) error { return nil }},
				api.Check{Name: "nats", Func: func(ctx context.Context) error {
					return errors.New("dial tcp 10.1.2.3:4222: connection refused")
				}},
			)
		})
		r := e.do(t, "GET", "/readyz", "", nil)
		p := wantProblem(t, r, 503, problem.Unavailable)
		if detail := p["detail"].(string); !strings.Contains(detail, "nats") || strings.Contains(detail, "database") {
			t.Fatalf("detail %q should name nats only", detail)
		}
		if strings.Contains(string(r.body), "10.1.2.3") {
			t.Fatalf("readyz leaks the cause: %s", r.body)
		}
		if !strings.Contains(e.logs.String(), "10.1.2.3") {
			t.Fatal("the cause was not logged")
		}
	})
	t.Run("plain error", func(t *testing.T) {
		e := newEnv(t, func(c *api.Config) {
			c.Ready = func(context.Context) error { return errors.New("password authentication failed") }
		})
		r := e.do(t, "GET", "/readyz", "", nil)
		wantProblem(t, r, 503, problem.Unavailable)
		if strings.Contains(string(r.body), "password") {
			t.Fatalf("readyz leaks the cause: %s", r.body)
		}
	})
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, func(c *api.Config) {
		c.Routes = []api.Route{api.GET("/things/:id", func(c *fiber.Ctx) error { return c.SendString("ok") })}
	})
	e.do(t, "GET", "/healthz", "", nil)
	e.do(t, "GET", "/v1/things/thing_123", e.admin, nil)
	e.do(t, "GET", "/v1/things/thing_123", "", nil) // 401, before routing
	e.metrics.BatchCommitted(3, 250, 4*time.Millisecond, 2)
	e.metrics.BatchFailed(1, 10, errors.New("boom"))
	e.metrics.QueueDepth(func() int { return 42 })

	r := e.do(t, "GET", "/metrics", "", nil)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics: %d %s", r.status, r.header.Get("Content-Type"))
	}
	text := string(r.body)
	for _, want := range []string{
		`ledger_http_requests_total{method="GET",route="/healthz",status="200"} 1`,
		`ledger_http_requests_total{method="GET",route="/v1/things/:id",status="200"} 1`,
		`ledger_http_requests_total{method="GET",route="unrouted",status="401"} 1`,
		`ledger_http_request_duration_seconds_bucket{method="GET",route="/healthz",status="200",le="0.001"}`,
		`ledger_poster_batch_size_bucket{le="200"} 0`,
		`ledger_poster_batch_size_bucket{le="500"} 1`,
		`ledger_poster_batch_commit_seconds_bucket{le="0.005"} 1`,
		`ledger_poster_operations_total{shard="3"} 250`,
		`ledger_poster_retries_total 2`,
		`ledger_poster_failed_batches_total 1`,
		`ledger_poster_failed_operations_total 10`,
		`ledger_poster_queue_depth 42`,
		`go_goroutines `,
		`process_cpu_seconds_total `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s\n%s", want, text)
		}
	}
	if strings.Contains(text, "thing_123") {
		t.Error("a raw path became a metric label")
	}
}

func TestAuth(t *testing.T) {
	ctx := context.Background()
	clk := struct {
		sync.Mutex
		t time.Time
	}{t: time.Now().Add(-time.Hour)}
	e := newEnv(t, func(c *api.Config) {
		c.Keys.Now = func() time.Time { clk.Lock(); defer clk.Unlock(); return clk.t }
		c.Routes = []api.Route{
			api.POST("/events", func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusAccepted) }).Allow(apikey.Ingest),
			api.GET("/customers/:id/things", func(c *fiber.Ctx) error {
				if err := auth.RequireCustomer(c, c.Params("id")); err != nil {
					return err
				}
				return c.JSON(fiber.Map{"customer": c.Params("id")})
			}).Allow(apikey.Read, apikey.Portal),
			api.GET("/admin-only", func(c *fiber.Ctx) error { return c.SendString("ok") }),
		}
	})
	mk := func(scope apikey.Scope, customer string, ttl time.Duration) (string, apikey.Key) {
		t.Helper()
		plain, k, err := e.keys.Create(ctx, apikey.NewKey{Scope: scope, CustomerID: customer, TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return plain, k
	}
	expired, _ := mk(apikey.Read, "", time.Minute) // an hour ago
	clk.Lock()
	clk.t = time.Now()
	clk.Unlock()
	read, _ := mk(apikey.Read, "", 0)
	ingest, _ := mk(apikey.Ingest, "", 0)
	portal, _ := mk(apikey.Portal, "cus_a", time.Hour)
	revoked, rk := mk(apikey.Admin, "", 0)
	if _, err := e.keys.Revoke(ctx, rk.ID); err != nil {
		t.Fatal(err)
	}
	unknown := "lk_admin_aaaaaaaaaaaaaaaa_" + strings.Repeat("b", 52)

	type call struct{ method, path string }
	var (
		whoami     = call{"GET", "/v1/whoami"}
		createKey  = call{"POST", "/v1/api-keys"}
		listKeys   = call{"GET", "/v1/api-keys"}
		events     = call{"POST", "/v1/events"}
		ownThings  = call{"GET", "/v1/customers/cus_a/things"}
		others     = call{"GET", "/v1/customers/cus_b/things"}
		adminOnly  = call{"GET", "/v1/admin-only"}
		portalMint = call{"POST", "/v1/customers/cus_c/portal-tokens"}
		noRoute    = call{"GET", "/v1/no-such-thing"}
	)
	bodies := map[call]any{createKey: map[string]any{"scope": "read"}}
	for _, tc := range []struct {
		name   string
		header string // the whole Authorization header; "" sends none
		call   call
		status int
	}{
		{"missing header", "", whoami, 401},
		{"missing header, unknown route", "", noRoute, 401},
		{"not bearer", "Basic " + read, whoami, 401},
		{"empty bearer", "Bearer ", whoami, 401},
		{"malformed key", "Bearer not-a-key", whoami, 401},
		{"unknown key", "Bearer " + unknown, whoami, 401},
		{"revoked key", "Bearer " + revoked, whoami, 401},
		{"expired key", "Bearer " + expired, whoami, 401},
		{"lower-case scheme", "bearer " + read, whoami, 200},

		{"admin whoami", "Bearer " + e.admin, whoami, 200},
		{"admin creates key", "Bearer " + e.admin, createKey, 201},
		{"admin lists keys", "Bearer " + e.admin, listKeys, 200},
		{"admin ingests", "Bearer " + e.admin, events, 202},
		{"admin reads any customer", "Bearer " + e.admin, others, 200},
		{"admin on admin-only", "Bearer " + e.admin, adminOnly, 200},
		{"admin mints portal token", "Bearer " + e.admin, portalMint, 201},
		{"admin, unknown route", "Bearer " + e.admin, noRoute, 404},

		{"read whoami", "Bearer " + read, whoami, 200},
		{"read creates key", "Bearer " + read, createKey, 403},
		{"read lists keys", "Bearer " + read, listKeys, 403},
		{"read ingests", "Bearer " + read, events, 403},
		{"read reads any customer", "Bearer " + read, others, 200},
		{"read on admin-only GET", "Bearer " + read, adminOnly, 403},
		{"read mints portal token", "Bearer " + read, portalMint, 403},

		{"ingest whoami", "Bearer " + ingest, whoami, 403},
		{"ingest lists keys", "Bearer " + ingest, listKeys, 403},
		{"ingest reads", "Bearer " + ingest, ownThings, 403},
		{"ingest ingests", "Bearer " + ingest, events, 202},

		{"portal whoami", "Bearer " + portal, whoami, 200},
		{"portal reads own customer", "Bearer " + portal, ownThings, 200},
		{"portal reads another customer", "Bearer " + portal, others, 404},
		{"portal ingests", "Bearer " + portal, events, 403},
		{"portal lists keys", "Bearer " + portal, listKeys, 403},
		{"portal mints portal token", "Bearer " + portal, portalMint, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.call.method, tc.call.path, http.NoBody)
			if b, ok := bodies[tc.call]; ok {
				j, _ := json.Marshal(b)
				req = httptest.NewRequest(tc.call.method, tc.call.path, bytes.NewReader(j))
				req.Header.Set("Content-Type", "application/json")
			}
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := e.app.Test(req, 5000)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			r := response{resp.StatusCode, resp.Header, body}
			switch tc.status {
			case 401:
				wantProblem(t, r, 401, problem.Unauthorized)
				if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Fatalf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
				}
			case 403:
				wantProblem(t, r, 403, problem.Forbidden)
			case 404:
				wantProblem(t, r, 404, problem.NotFound)
			default:
				if r.status != tc.status {
					t.Fatalf("status %d, want %d\n%s", r.status, tc.status, r.body)
				}
			}
		})
	}

	// whoami tells each key what it is.
	for _, tc := range []struct {
		key      string
		scope    string
		customer any
	}{{read, "read", nil}, {portal, "portal", "cus_a"}, {e.admin, "admin", nil}} {
		w := e.do(t, "GET", "/v1/whoami", tc.key, nil).json(t)
		if w["scope"] != tc.scope || w["customer_id"] != tc.customer || w["key_id"] == "" || w["id"] == "" {
			t.Errorf("whoami for a %s key: %v", tc.scope, w)
		}
	}
}

func TestRouteTableFailsClosed(t *testing.T) {
	h := func(c *fiber.Ctx) error { return nil }
	for name, routes := range map[string][]api.Route{
		"read on POST":      {api.POST("/x", h).Allow(apikey.Read)},
		"portal on DELETE":  {api.DELETE("/x", h).Allow(apikey.Portal)},
		"duplicate":         {api.GET("/x", h), api.GET("/x", h)},
		"no handler":        {api.GET("/x")},
		"relative path":     {api.GET("x", h)},
		"unsupported verb":  {{Method: "TRACE", Path: "/x", Handlers: []fiber.Handler{h}}},
		"built-in shadowed": {api.GET("/whoami", h)},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("api.New accepted a bad route table")
				}
			}()
			api.New(api.Config{Keys: &apikey.Store{}, Routes: routes})
		})
	}
}

func TestAPIKeys(t *testing.T) {
	e := newEnv(t, nil)

	// Validation.
	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   problem.Code
		field  string
	}{
		{"no scope", map[string]any{}, 422, problem.Validation, "scope"},
		{"bad scope", map[string]any{"scope": "root"}, 422, problem.Validation, "scope"},
		{"portal without customer", map[string]any{"scope": "portal"}, 422, problem.Validation, "customer_id"},
		{"read with customer", map[string]any{"scope": "read", "customer_id": "c"}, 422, problem.Validation, "customer_id"},
		{"zero lifetime", map[string]any{"scope": "read", "expires_in_seconds": 0}, 422, problem.Validation, "expires_in_seconds"},
		{"lifetime as string", map[string]any{"scope": "read", "expires_in_seconds": "60"}, 422, problem.Validation, "expires_in_seconds"},
		{"unknown field", map[string]any{"scope": "read", "scopes": "x"}, 422, problem.Validation, "scopes"},
		{"malformed JSON", `{"scope": "read"`, 400, problem.BadRequest, ""},
		{"not an object", `[1]`, 400, problem.BadRequest, ""},
		{"two values", `{"scope":"read"} {}`, 400, problem.BadRequest, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := wantProblem(t, e.do(t, "POST", "/v1/api-keys", e.admin, tc.body), tc.status, tc.code)
			if tc.field != "" {
				errs, _ := p["errors"].([]any)
				if len(errs) == 0 || errs[0].(map[string]any)["field"] != tc.field {
					t.Fatalf("errors %v, want field %s", p["errors"], tc.field)
				}
			}
		})
	}

	// Create, use, list, revoke.
	r := e.do(t, "POST", "/v1/api-keys", e.admin, map[string]any{"scope": "ingest", "name": "edge", "expires_in_seconds": 3600})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	created := r.json(t)
	key, _ := created["key"].(string)
	if !strings.HasPrefix(key, "lk_ingest_") || created["scope"] != "ingest" || created["name"] != "edge" ||
		created["customer_id"] != nil || created["expires_at"] == nil || created["revoked_at"] != nil {
		t.Fatalf("created key: %v", created)
	}
	if at, err := time.Parse(time.RFC3339, created["created_at"].(string)); err != nil || at.Location() != time.UTC {
		t.Fatalf("created_at %v is not RFC 3339 UTC", created["created_at"])
	}
	if r := e.do(t, "GET", "/v1/whoami", key, nil); r.status != 403 { // ingest: authenticated, not allowed
		t.Fatalf("new ingest key on whoami: %d %s", r.status, r.body)
	}

	list := e.do(t, "GET", "/v1/api-keys?limit=500", e.admin, nil)
	if list.status != 200 {
		t.Fatalf("list: %d %s", list.status, list.body)
	}
	if bytes.Contains(list.body, []byte(key)) || bytes.Contains(list.body, []byte(`"key"`)) {
		t.Fatalf("list shows a secret: %s", list.body)
	}
	var page struct {
		Data       []map[string]any `json:"data"`
		NextCursor *string          `json:"next_cursor"`
	}
	if err := json.Unmarshal(list.body, &page); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, k := range page.Data {
		found = found || k["id"] == created["id"]
	}
	if !found || page.NextCursor != nil {
		t.Fatalf("list: found=%v next=%v", found, page.NextCursor)
	}
	wantProblem(t, e.do(t, "GET", "/v1/api-keys?limit=0", e.admin, nil), 422, problem.Validation)
	wantProblem(t, e.do(t, "GET", "/v1/api-keys?cursor=zzz", e.admin, nil), 422, problem.Validation)

	paged := e.do(t, "GET", "/v1/api-keys?limit=1", e.admin, nil).json(t)
	if next, _ := paged["next_cursor"].(string); next == "" {
		t.Fatalf("first page of 1 has no next cursor: %v", paged)
	} else if r := e.do(t, "GET", "/v1/api-keys?limit=1&cursor="+next, e.admin, nil); r.status != 200 {
		t.Fatalf("second page: %d %s", r.status, r.body)
	}

	rev := e.do(t, "DELETE", "/v1/api-keys/"+created["id"].(string), e.admin, nil)
	if rev.status != 200 || rev.json(t)["revoked_at"] == nil {
		t.Fatalf("revoke: %d %s", rev.status, rev.body)
	}
	wantProblem(t, e.do(t, "GET", "/v1/whoami", key, nil), 401, problem.Unauthorized)
	wantProblem(t, e.do(t, "DELETE", "/v1/api-keys/00000000-0000-0000-0000-000000000000", e.admin, nil), 404, problem.NotFound)
	wantProblem(t, e.do(t, "DELETE", "/v1/api-keys/nonsense", e.admin, nil), 404, problem.NotFound)

	// Portal tokens.
	r = e.do(t, "POST", "/v1/customers/cus%20x/portal-tokens", e.admin, nil)
	if r.status != 201 {
		t.Fatalf("portal token: %d %s", r.status, r.body)
	}
	tok := r.json(t)
	exp, err := time.Parse(time.RFC3339, tok["expires_at"].(string))
	if err != nil || tok["scope"] != "portal" || tok["customer_id"] != "cus x" ||
		time.Until(exp) < 59*time.Minute || time.Until(exp) > 61*time.Minute {
		t.Fatalf("portal token: %v", tok)
	}
	if w := e.do(t, "GET", "/v1/whoami", tok["key"].(string), nil).json(t); w["customer_id"] != "cus x" {
		t.Fatalf("whoami with portal token: %v", w)
	}
	r = e.do(t, "POST", "/v1/customers/cus_y/portal-tokens", e.admin, map[string]any{"expires_in_seconds": 60, "name": "dashboard"})
	if r.status != 201 || r.json(t)["name"] != "dashboard" {
		t.Fatalf("portal token with body: %d %s", r.status, r.body)
	}
	wantProblem(t, e.do(t, "POST", "/v1/customers/cus_y/portal-tokens", e.admin, map[string]any{"expires_in_seconds": 31 * 24 * 3600}),
		422, problem.Validation)
}

func TestErrors(t *testing.T) {
	e := newEnv(t, func(c *api.Config) {
		c.BodyLimit = 1024
		c.Routes = []api.Route{
			api.GET("/panic", func(c *fiber.Ctx) error { panic("secret panic text") }),
			api.GET("/sql", func(c *fiber.Ctx) error {
				return errors.New(`ERROR: SELECT secret_hash FROM api_keys: relation does not exist (SQLSTATE 42P01)`)
			}),
			api.GET("/wrapped", func(c *fiber.Ctx) error {
				return errors.Join(errors.New("SELECT 1"), problem.New(problem.Conflict, "already exists"))
			}),
			api.GET("/fiber-500", func(c *fiber.Ctx) error { return fiber.NewError(500, "SELECT from fiber") }),
			api.POST("/echo", func(c *fiber.Ctx) error { return c.Send(c.Body()) }),
		}
	})

	t.Run("body too large", func(t *testing.T) {
		if r := e.do(t, "POST", "/v1/echo", e.admin, strings.Repeat("x", 1000)); r.status != 200 {
			t.Fatalf("body under the limit: %d %s", r.status, r.body)
		}
		// fasthttp refuses the body while reading the request, and app.Test
		// reports that as its own error, so this one takes a real socket.
		big := newEnv(t, func(c *api.Config) {
			c.BodyLimit = 1024
			c.Routes = []api.Route{api.POST("/echo", func(c *fiber.Ctx) error { return c.Send(c.Body()) })}
		})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- big.app.Listener(ln) }()
		t.Cleanup(func() {
			_ = big.app.Shutdown()
			<-served
		})
		req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/v1/echo", strings.NewReader(strings.Repeat("x", 2048)))
		req.Header.Set("Authorization", "Bearer "+big.admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		wantProblem(t, response{resp.StatusCode, resp.Header, body}, 413, problem.PayloadTooLarge)
	})
	t.Run("unknown route", func(t *testing.T) {
		wantProblem(t, e.do(t, "GET", "/nope", "", nil), 404, problem.NotFound)
	})
	t.Run("wrong method", func(t *testing.T) {
		wantProblem(t, e.do(t, "POST", "/healthz", "", nil), 405, problem.MethodNotAllowed)
	})
	t.Run("panic", func(t *testing.T) {
		r := e.do(t, "GET", "/v1/panic", e.admin, nil)
		wantProblem(t, r, 500, problem.Internal)
		if bytes.Contains(r.body, []byte("secret")) || bytes.Contains(r.body, []byte("goroutine")) {
			t.Fatalf("panic leaked: %s", r.body)
		}
		if logs := e.logs.String(); !strings.Contains(logs, "secret panic text") || !strings.Contains(logs, "api_test.go") {
			t.Fatal("the panic and its stack were not logged")
		}
		// The server survives.
		if r := e.do(t, "GET", "/healthz", "", nil); r.status != 200 {
			t.Fatalf("after panic: %d", r.status)
		}
	})
	for _, path := range []string{"/v1/sql", "/v1/fiber-500"} {
		t.Run("raw error "+path, func(t *testing.T) {
			r := e.do(t, "GET", path, e.admin, nil)
			p := wantProblem(t, r, 500, problem.Internal)
			if bytes.Contains(r.body, []byte("SELECT")) {
				t.Fatalf("SQL leaked: %s", r.body)
			}
			if !strings.Contains(e.logs.String(), "SELECT") || !strings.Contains(e.logs.String(), p["request_id"].(string)) {
				t.Fatal("the error was not logged with the request id")
			}
		})
	}
	t.Run("wrapped problem", func(t *testing.T) {
		r := e.do(t, "GET", "/v1/wrapped", e.admin, nil)
		wantProblem(t, r, 409, problem.Conflict)
		if bytes.Contains(r.body, []byte("SELECT")) {
			t.Fatalf("wrapping error leaked: %s", r.body)
		}
	})
}

func TestRequestID(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		in   string
		keep bool
	}{
		{"4bf92f3577b34da6a3ce929d0e0e4736", true},
		{"req-123_abc.def:1", true},
		{"", false},
		{"has space", false},
		{"line\nbreak", false},
		{strings.Repeat("a", 129), false},
	} {
		req := httptest.NewRequest("GET", "/nope", http.NoBody)
		if tc.in != "" {
			req.Header[api.HeaderRequestID] = []string{tc.in}
		}
		resp, err := e.app.Test(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := resp.Header.Get(api.HeaderRequestID)
		if tc.keep && got != tc.in || !tc.keep && (got == "" || got == tc.in) {
			t.Errorf("X-Request-Id %q came back as %q", tc.in, got)
		}
		if !bytes.Contains(body, []byte(`"request_id":"`+got+`"`)) {
			t.Errorf("problem body lacks request id %q: %s", got, body)
		}
	}
	if !strings.Contains(e.logs.String(), "request_id=4bf92f3577b34da6a3ce929d0e0e4736") {
		t.Error("access log lacks the request id")
	}
}

func TestAccessLog(t *testing.T) {
	e := newEnv(t, func(c *api.Config) {
		c.Routes = []api.Route{api.GET("/wallets/:id", func(c *fiber.Ctx) error { return c.SendStatus(204) })}
	})
	e.do(t, "GET", "/v1/wallets/w_42", e.admin, nil)
	logs := e.logs.String()
	for _, want := range []string{"method=GET", "route=/v1/wallets/:id", "path=/v1/wallets/w_42", "status=204", "duration="} {
		if !strings.Contains(logs, want) {
			t.Errorf("access log lacks %s:\n%s", want, logs)
		}
	}
}
