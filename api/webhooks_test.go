package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/api"
	"github.com/creditledger/creditledger/api/problem"
	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/webhook"
)

// webhookEnv is an app with the webhook routes. The service refuses
// private targets unless allowPrivate, as in production.
type webhookEnv struct {
	*env
	svc *webhook.Service
	cf  *conformer
}

func newWebhookEnv(t *testing.T, allowPrivate bool) *webhookEnv {
	t.Helper()
	w := &webhookEnv{}
	w.env = newEnv(t, func(c *api.Config) {
		w.svc = webhook.New(c.DB, webhook.Options{
			AllowPrivate: allowPrivate,
			Timeout:      2 * time.Second,
			Schedule:     []time.Duration{5 * time.Millisecond, 5 * time.Millisecond},
			PollInterval: 5 * time.Millisecond,
		})
		c.Routes = api.WebhookRoutes(w.svc)
	})
	// Every answer is checked against the OpenAPI document too.
	w.cf = &conformer{t: t, e: &walletEnv{w.env}, doc: loadOpenAPI(t), seen: map[string]bool{}}
	return w
}

type (
	webhookEndpointJSON struct {
		ID             string     `json:"id"`
		URL            string     `json:"url"`
		EventTypes     []string   `json:"event_types"`
		CreatedAt      time.Time  `json:"created_at"`
		FailingSince   *time.Time `json:"failing_since"`
		DisabledAt     *time.Time `json:"disabled_at"`
		DisabledReason *string    `json:"disabled_reason"`
		// PreviousSecretExpiresAt is the end of a rotation's overlap.
		PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
		Secret                  *string    `json:"secret"`
	}
	webhookDeliveryJSON struct {
		ID             string     `json:"id"`
		EndpointID     string     `json:"endpoint_id"`
		EventID        string     `json:"event_id"`
		EventType      string     `json:"event_type"`
		Status         string     `json:"status"`
		AttemptCount   int        `json:"attempt_count"`
		NextAttemptAt  *time.Time `json:"next_attempt_at"`
		LastStatusCode *int       `json:"last_status_code"`
		LastError      *string    `json:"last_error"`
		Attempts       []struct {
			At         time.Time `json:"at"`
			StatusCode *int      `json:"status_code"`
			Error      *string   `json:"error"`
			DurationMS int64     `json:"duration_ms"`
		} `json:"attempts"`
	}
)

func (w *webhookEnv) create(t *testing.T, body map[string]any) webhookEndpointJSON {
	t.Helper()
	e := want[webhookEndpointJSON](t, w.do(t, "POST", "/v1/webhook-endpoints", w.admin, body), 201)
	t.Cleanup(func() { w.do(t, "DELETE", "/v1/webhook-endpoints/"+e.ID, w.admin, nil) })
	return e
}

func TestWebhookEndpointsHTTP(t *testing.T) {
	w := newWebhookEnv(t, false)
	do := w.cf.do

	// Created: the secret is in this answer and no other.
	body := map[string]any{"url": "https://93.184.216.34/hooks", "event_types": []string{"topup.succeeded", "invoice.created"}}
	created := do(oaCall{method: "POST", path: "/v1/webhook-endpoints", body: body}, 201)
	id, _ := created["id"].(string)
	t.Cleanup(func() { w.do(t, "DELETE", "/v1/webhook-endpoints/"+id, w.admin, nil) })
	secret, _ := created["secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") || len(secret) < len("whsec_")+40 {
		t.Fatalf("secret %q", secret)
	}
	if created["url"] != body["url"] || created["disabled_at"] != nil {
		t.Fatalf("created %v", created)
	}
	got := do(oaCall{method: "GET", path: "/v1/webhook-endpoints/{id}", id: id}, 200)
	if _, ok := got["secret"]; ok || got["id"] != id {
		t.Fatalf("GET shows %v", got)
	}
	if types, _ := got["event_types"].([]any); len(types) != 2 || types[0] != "topup.succeeded" {
		t.Fatalf("event_types %v", got["event_types"])
	}

	// All event types by default; listed newest first, pages by cursor.
	all := do(oaCall{method: "POST", path: "/v1/webhook-endpoints", body: map[string]any{"url": "http://93.184.216.34:8080/all"}}, 201)
	t.Cleanup(func() { w.do(t, "DELETE", "/v1/webhook-endpoints/"+all["id"].(string), w.admin, nil) })
	if types, _ := all["event_types"].([]any); types == nil || len(types) != 0 {
		t.Fatalf("event_types %v, want []", all["event_types"])
	}
	page := do(oaCall{method: "GET", path: "/v1/webhook-endpoints", query: "limit=1"}, 200)
	data, _ := page["data"].([]any)
	next, _ := page["next_cursor"].(string)
	if len(data) != 1 || data[0].(map[string]any)["id"] != all["id"] || next == "" {
		t.Fatalf("first page %v", page)
	}
	if strings.Contains(string(w.do(t, "GET", "/v1/webhook-endpoints", w.admin, nil).body), "whsec_") {
		t.Fatal("the list shows a secret")
	}
	page = do(oaCall{method: "GET", path: "/v1/webhook-endpoints", query: "limit=1&cursor=" + url.QueryEscape(next)}, 200)
	if data, _ := page["data"].([]any); len(data) != 1 || data[0].(map[string]any)["id"] != id {
		t.Fatalf("second page %v", page)
	}
	do(oaCall{method: "GET", path: "/v1/webhook-endpoints", query: "cursor=nonsense"}, 422)
	do(oaCall{method: "GET", path: "/v1/webhook-endpoints", query: "limit=0"}, 422)

	// Refused.
	for _, tc := range []struct {
		body  any
		field string
	}{
		{map[string]any{"url": "http://127.0.0.1:8080/hook"}, "url"},
		{map[string]any{"url": "http://169.254.169.254/latest/meta-data"}, "url"},
		{map[string]any{"url": "http://localhost/hook"}, "url"},
		{map[string]any{"url": "ftp://example.com/"}, "url"},
		{map[string]any{"url": "http://user:pw@example.com/"}, "url"},
		{map[string]any{}, "url"},
		{map[string]any{"url": "https://93.184.216.34/", "event_types": []string{"wallet.depleted", "wallet.exploded"}}, "event_types.1"},
		{map[string]any{"url": "https://93.184.216.34/", "event_types": "wallet.depleted"}, "event_types"},
		{map[string]any{"url": "https://93.184.216.34/", "secret": "whsec_mine"}, "secret"},
	} {
		wantField(t, do(oaCall{method: "POST", path: "/v1/webhook-endpoints", body: tc.body}, 422), tc.field)
	}
	do(oaCall{method: "POST", path: "/v1/webhook-endpoints", body: "{"}, 400)

	// Deleted: gone for GET, DELETE and the log.
	do(oaCall{method: "DELETE", path: "/v1/webhook-endpoints/{id}", id: id}, 200)
	do(oaCall{method: "GET", path: "/v1/webhook-endpoints/{id}", id: id}, 404)
	do(oaCall{method: "DELETE", path: "/v1/webhook-endpoints/{id}", id: id}, 404)
	do(oaCall{method: "GET", path: "/v1/webhook-endpoints/{id}/deliveries", id: id}, 404)
	do(oaCall{method: "POST", path: "/v1/webhook-endpoints/{id}/enable", id: id}, 404)
	do(oaCall{method: "GET", path: "/v1/webhook-endpoints/{id}", id: "not-a-uuid"}, 404)
	do(oaCall{method: "GET", path: "/v1/webhook-endpoints/{id}", id: uuid.NewString()}, 404)
	do(oaCall{method: "POST", path: "/v1/webhook-endpoints/{id}/enable", id: all["id"].(string)}, 200)
}

// Rotating a secret shows the new one once, and the end of the old one's
// overlap on the endpoint from then on; the signatures themselves are
// tested in webhook.
func TestWebhookRotateSecretHTTP(t *testing.T) {
	w := newWebhookEnv(t, false)
	do := w.cf.do
	created := w.create(t, map[string]any{"url": "https://93.184.216.34/rotating"})
	path := "/v1/webhook-endpoints/{id}/rotate-secret"

	before := time.Now()
	r := do(oaCall{method: "POST", path: path, id: created.ID}, 200) // no body: a day's overlap
	secret, _ := r["secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") || secret == *created.Secret || r["id"] != created.ID {
		t.Fatalf("rotated %v; want a new whsec_ secret for the endpoint", r)
	}
	until, err := time.Parse(time.RFC3339Nano, fmt.Sprint(r["previous_secret_expires_at"]))
	if err != nil || until.Before(before.Add(24*time.Hour)) || until.After(time.Now().Add(24*time.Hour)) {
		t.Fatalf("previous_secret_expires_at %v, want a day from now", r["previous_secret_expires_at"])
	}
	got := do(oaCall{method: "GET", path: "/v1/webhook-endpoints/{id}", id: created.ID}, 200)
	if _, ok := got["secret"]; ok || got["previous_secret_expires_at"] != r["previous_secret_expires_at"] {
		t.Fatalf("GET after rotating shows %v", got)
	}
	for _, body := range []string{string(w.do(t, "GET", "/v1/webhook-endpoints?limit=500", w.admin, nil).body),
		string(w.do(t, "GET", "/v1/webhook-endpoints/"+created.ID, w.admin, nil).body)} {
		if strings.Contains(body, "whsec_") {
			t.Fatalf("a secret is shown outside the rotation: %s", body)
		}
	}

	r = do(oaCall{method: "POST", path: path, id: created.ID, body: map[string]any{"previous_secret_expires_in_seconds": 3600}}, 200)
	if until, err := time.Parse(time.RFC3339Nano, fmt.Sprint(r["previous_secret_expires_at"])); err != nil ||
		until.Sub(time.Now()) > time.Hour || until.Sub(time.Now()) < 59*time.Minute {
		t.Fatalf("an hour's overlap: previous_secret_expires_at %v", r["previous_secret_expires_at"])
	}
	r = do(oaCall{method: "POST", path: path, id: created.ID, body: map[string]any{"previous_secret_expires_in_seconds": 0}}, 200)
	if r["previous_secret_expires_at"] != nil || r["secret"] == secret {
		t.Fatalf("no overlap: %v", r)
	}
	if got := do(oaCall{method: "GET", path: "/v1/webhook-endpoints/{id}", id: created.ID}, 200); got["previous_secret_expires_at"] != nil {
		t.Fatalf("no overlap, yet GET shows %v", got)
	}

	for _, body := range []any{
		map[string]any{"previous_secret_expires_in_seconds": -1},
		map[string]any{"previous_secret_expires_in_seconds": 7*24*3600 + 1},
		map[string]any{"previous_secret_expires_in_seconds": int64(1) << 62},
		map[string]any{"previous_secret_expires_in_seconds": "60"},
	} {
		wantField(t, do(oaCall{method: "POST", path: path, id: created.ID, body: body}, 422), "previous_secret_expires_in_seconds")
	}
	wantField(t, do(oaCall{method: "POST", path: path, id: created.ID, body: map[string]any{"secret": "whsec_mine"}}, 422), "secret")
	do(oaCall{method: "POST", path: path, id: created.ID, body: "{"}, 400)
	do(oaCall{method: "POST", path: path, id: uuid.NewString()}, 404)
	do(oaCall{method: "POST", path: path, id: "not-a-uuid"}, 404)
	do(oaCall{method: "DELETE", path: "/v1/webhook-endpoints/{id}", id: created.ID}, 200)
	do(oaCall{method: "POST", path: path, id: created.ID}, 404)
}

// A real receiver on 127.0.0.1 (so the service allows private targets):
// the delivery log after a failure and a success, a resend, and resends
// that cannot be.
func TestWebhookDeliveriesHTTP(t *testing.T) {
	w := newWebhookEnv(t, true)
	do := w.cf.do
	ctx := context.Background()
	var (
		mu  sync.Mutex
		got []string // webhook-id of each request
	)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("webhook-id"))
		n := len(got)
		mu.Unlock()
		if n == 1 {
			rw.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}

	// Other tests of this package leave outbox messages behind: relay them
	// before the endpoint exists, so it gets only this test's event.
	relay := ledger.NewRelay(w.db, nil, w.svc)
	for {
		n, err := relay.RunOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	e := w.create(t, map[string]any{"url": srv.URL + "/hook", "event_types": []string{"invoice.created"}})
	event := uuid.Must(uuid.NewV7())
	if _, err := w.db.Pool.Exec(ctx, `INSERT INTO outbox (id, topic, payload, created_at, available_at)
		VALUES ($1, 'invoice.created', '{"invoice_id": "inv_1"}', now(), now())`, event); err != nil {
		t.Fatal(err)
	}
	if _, err := relay.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	dispatchUntil(t, w.svc, func() bool { return count() >= 2 })

	log := want[pageJSON[webhookDeliveryJSON]](t, w.do(t, "GET", "/v1/webhook-endpoints/"+e.ID+"/deliveries", w.admin, nil), 200)
	if len(log.Data) != 1 {
		t.Fatalf("%d deliveries, want 1", len(log.Data))
	}
	d := log.Data[0]
	if d.EventID != event.String() || d.EventType != "invoice.created" || d.Status != "succeeded" || d.AttemptCount != 2 ||
		len(d.Attempts) != 2 || *d.Attempts[0].StatusCode != 500 || *d.Attempts[1].StatusCode != 200 ||
		d.Attempts[0].Error == nil || d.NextAttemptAt != nil {
		t.Fatalf("delivery %+v", d)
	}
	do(oaCall{method: "GET", path: "/v1/webhook-endpoints/{id}/deliveries", id: e.ID, query: "status=succeeded&limit=10"}, 200)
	do(oaCall{method: "GET", path: "/v1/webhook-endpoints/{id}/deliveries", id: e.ID, query: "status=lost"}, 422)

	// Resend: 202, pending, then sent with the same webhook-id.
	r := do(oaCall{method: "POST", path: "/v1/webhook-deliveries/{id}/resend", id: d.ID}, 202)
	if r["status"] != "pending" || r["event_id"] != event.String() {
		t.Fatalf("resend answered %v", r)
	}
	dispatchUntil(t, w.svc, func() bool { return count() >= 3 })
	mu.Lock()
	ids := append([]string(nil), got...)
	mu.Unlock()
	for _, id := range ids {
		if id != event.String() {
			t.Fatalf("webhook-ids %v, want %s each time", ids, event)
		}
	}
	log = want[pageJSON[webhookDeliveryJSON]](t, w.do(t, "GET", "/v1/webhook-endpoints/"+e.ID+"/deliveries", w.admin, nil), 200)
	if d := log.Data[0]; d.Status != "succeeded" || d.AttemptCount != 3 || len(d.Attempts) != 3 {
		t.Fatalf("after the resend: %+v", d)
	}

	do(oaCall{method: "POST", path: "/v1/webhook-deliveries/{id}/resend", id: uuid.NewString()}, 404)
	do(oaCall{method: "POST", path: "/v1/webhook-deliveries/{id}/resend", id: "not-a-uuid"}, 404)
	do(oaCall{method: "DELETE", path: "/v1/webhook-endpoints/{id}", id: e.ID}, 200)
	p := do(oaCall{method: "POST", path: "/v1/webhook-deliveries/{id}/resend", id: d.ID}, 409)
	if p["code"] != string(problem.Conflict) {
		t.Fatalf("problem %v", p)
	}
}

func dispatchUntil(t *testing.T, svc *webhook.Service, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for deliveries")
		}
		if _, err := svc.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Only admin keys manage webhooks: read and ingest keys get 403, with
// nothing changed.
func TestWebhookAuthorization(t *testing.T) {
	w := newWebhookEnv(t, false)
	ctx := context.Background()
	e := w.create(t, map[string]any{"url": "https://93.184.216.34/hooks"})
	keys := map[string]string{}
	for _, sc := range []apikey.Scope{apikey.Read, apikey.Ingest} {
		k, _, err := w.keys.Create(ctx, apikey.NewKey{Scope: sc, Name: "webhook authz", TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		keys[string(sc)] = k
	}
	portal, _, err := w.keys.Create(ctx, apikey.NewKey{Scope: apikey.Portal, CustomerID: "cus_webhooks", Name: "webhook authz", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	keys["portal"] = portal

	routes := []struct{ method, path string }{
		{"POST", "/v1/webhook-endpoints"},
		{"GET", "/v1/webhook-endpoints"},
		{"GET", "/v1/webhook-endpoints/" + e.ID},
		{"DELETE", "/v1/webhook-endpoints/" + e.ID},
		{"POST", "/v1/webhook-endpoints/" + e.ID + "/enable"},
		{"POST", "/v1/webhook-endpoints/" + e.ID + "/rotate-secret"},
		{"GET", "/v1/webhook-endpoints/" + e.ID + "/deliveries"},
		{"POST", "/v1/webhook-deliveries/" + uuid.NewString() + "/resend"},
	}
	for name, key := range keys {
		for _, rt := range routes {
			var body any
			if rt.method == "POST" {
				body = map[string]any{"url": "https://93.184.216.34/other"}
			}
			t.Run(name+" "+rt.method+" "+rt.path, func(t *testing.T) {
				wantProblem(t, w.do(t, rt.method, rt.path, key, body), 403, problem.Forbidden)
			})
		}
	}
	for _, rt := range routes {
		wantProblem(t, w.do(t, rt.method, rt.path, "", nil), 401, problem.Unauthorized)
	}
	// Nothing was created or deleted.
	want[webhookEndpointJSON](t, w.do(t, "GET", "/v1/webhook-endpoints/"+e.ID, w.admin, nil), 200)
	page := want[pageJSON[webhookEndpointJSON]](t, w.do(t, "GET", "/v1/webhook-endpoints?limit=500", w.admin, nil), 200)
	for _, ep := range page.Data {
		if strings.HasSuffix(ep.URL, "/other") {
			t.Fatalf("a refused request created %+v", ep)
		}
	}
}
