package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/webhook"
)

var dsn string

func TestMain(m *testing.M) { os.Exit(testdb.Main(m, &dsn)) }

func openDB(t *testing.T) *pg.DB {
	t.Helper()
	testdb.Require(t, dsn)
	db, err := pg.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// testOptions are fast: millisecond retries, a short timeout, receivers on
// 127.0.0.1 allowed.
func testOptions(t *testing.T) webhook.Options {
	return webhook.Options{
		AllowPrivate: true,
		Timeout:      2 * time.Second,
		Schedule:     []time.Duration{5 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond},
		PollInterval: 5 * time.Millisecond,
		Log:          slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// clock is a settable Options.Now, to walk through a day-long schedule in
// no time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newEndpoint registers url for types and deletes it when the test ends,
// so that later tests' dispatchers never see it.
func newEndpoint(t *testing.T, svc *webhook.Service, url string, types ...string) (webhook.Endpoint, string) {
	t.Helper()
	e, secret, err := svc.CreateEndpoint(context.Background(), webhook.NewEndpoint{URL: url, EventTypes: types})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := svc.DeleteEndpoint(context.Background(), e.ID); err != nil && !errors.Is(err, fault.NotFound) {
			t.Errorf("delete endpoint: %v", err)
		}
	})
	return e, secret
}

// emit writes a committed outbox message, as a ledger batch would, and
// returns its id.
func emit(t *testing.T, db *pg.DB, topic string, payload any) uuid.UUID {
	t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.Must(uuid.NewV7())
	_, err = db.Pool.Exec(context.Background(), `INSERT INTO outbox (id, topic, owner_id, entry_id, payload, created_at, available_at)
		VALUES ($1, $2, NULL, NULL, $3, now(), now())`, id, topic, string(b))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// relay fans out every committed outbox message to svc.
func relay(t *testing.T, db *pg.DB, svc *webhook.Service) {
	t.Helper()
	if _, err := ledger.NewRelay(db, nil, svc).RunOnce(context.Background()); err != nil {
		t.Fatalf("relay: %v", err)
	}
}

// until runs the dispatcher until cond holds, failing after a deadline.
func until(t *testing.T, svc *webhook.Service, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		if _, err := svc.RunOnce(context.Background()); err != nil {
			t.Fatalf("dispatch: %v", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// received is one request a receiver got.
type received struct {
	endpoint string
	header   http.Header
	body     []byte
}

func (r received) id() string { return r.header.Get("webhook-id") }

// receiver is an HTTP server on 127.0.0.1 that records what it gets and
// answers with respond(request, how many requests with this webhook-id it
// has seen, this one included); nil answers 200.
type receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	got      []received
	inFlight map[string]int // per path: requests being handled now
	maxIn    map[string]int
	respond  func(r *http.Request, n int) int
}

func newReceiver(t *testing.T, respond func(r *http.Request, n int) int) *receiver {
	t.Helper()
	rc := &receiver{respond: respond, inFlight: map[string]int{}, maxIn: map[string]int{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.inFlight[r.URL.Path]++
	rc.maxIn[r.URL.Path] = max(rc.maxIn[r.URL.Path], rc.inFlight[r.URL.Path])
	rc.got = append(rc.got, received{endpoint: r.URL.Path, header: r.Header.Clone(), body: body})
	n := 0
	for _, g := range rc.got {
		if g.id() == r.Header.Get("webhook-id") && g.endpoint == r.URL.Path {
			n++
		}
	}
	rc.mu.Unlock()
	status := http.StatusOK
	if rc.respond != nil {
		status = rc.respond(r, n)
	}
	rc.mu.Lock()
	rc.inFlight[r.URL.Path]--
	rc.mu.Unlock()
	w.WriteHeader(status)
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

func (rc *receiver) count() int { return len(rc.requests()) }

// url is the receiver's URL with a path, one per endpoint.
func (rc *receiver) url(path string) string { return rc.srv.URL + path }

// verifySignature checks a request the way a receiver following Standard
// Webhooks does, written here without the package's signing code: the
// HMAC-SHA256, keyed with the base64-decoded secret after "whsec_", of
// "<webhook-id>.<webhook-timestamp>.<body>", among the space-separated
// "v1,<base64>" signatures.
func verifySignature(secret string, r received) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || !strings.HasPrefix(secret, "whsec_") {
		return errors.New("malformed secret")
	}
	id, ts := r.header.Get("webhook-id"), r.header.Get("webhook-timestamp")
	if id == "" || ts == "" {
		return errors.New("webhook-id or webhook-timestamp missing")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(r.body)
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(r.header.Get("webhook-signature")) {
		if v, s, ok := strings.Cut(sig, ","); ok && v == "v1" && hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return errors.New("no valid v1 signature in " + r.header.Get("webhook-signature"))
}

// deliveries is an endpoint's log.
func deliveries(t *testing.T, svc *webhook.Service, endpoint uuid.UUID) []webhook.Delivery {
	t.Helper()
	ds, _, err := svc.Deliveries(context.Background(), endpoint, webhook.DeliveryQuery{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// delivery is the endpoint's one delivery of event.
func delivery(t *testing.T, svc *webhook.Service, endpoint, event uuid.UUID) webhook.Delivery {
	t.Helper()
	for _, d := range deliveries(t, svc, endpoint) {
		if d.EventID == event {
			return d
		}
	}
	t.Fatalf("endpoint %s has no delivery of event %s", endpoint, event)
	return webhook.Delivery{}
}
