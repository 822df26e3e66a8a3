package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/creditledger/creditledger/internal/natsserver"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/secretbox"
	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/creditledger/creditledger/ledger/ledgertest"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/webhook"
)

// testEncryptionKey is a LEDGER_ENCRYPTION_KEY: 32 bytes in hex.
const testEncryptionKey = "8c1f6e3b9d27a04c5e8f1b3d6a9c2e705b0e9d2c7a41f8366e1d0c9b8a7f2e4d"

var dsn string

// After the package's tests, the whole journal they wrote must verify.
func TestMain(m *testing.M) {
	os.Exit(testdb.Main(m, &dsn, ledgertest.VerifyWith(metering.Checks()...)))
}

func TestHelpListsEveryVariable(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, func(string) string { return "" }, &out, &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, name := range []string{"DATABASE_URL", "NATS_URL", "LEDGER_DATA_DIR", "LEDGER_HTTP_ADDR", "LEDGER_ADMIN_KEY",
		"LEDGER_NATS_SUBJECT_PREFIX", "LEDGER_NATS_STREAM"} {
		if !strings.Contains(out.String(), name) {
			t.Errorf("--help does not mention %s", name)
		}
	}
}

func TestMigrateCommand(t *testing.T) {
	testdb.Require(t, dsn)
	var out bytes.Buffer
	env := func(k string) string {
		if k == "DATABASE_URL" {
			return dsn
		}
		return ""
	}
	if code := run(context.Background(), []string{"migrate"}, env, &out, &out); code != 0 {
		t.Fatalf("migrate: exit %d\n%s", code, out.String())
	}
	if code := run(context.Background(), []string{"frobnicate"}, env, &out, &out); code != 2 {
		t.Fatalf("unknown command: exit %d, want 2", code)
	}
}

// ledgerd with only DATABASE_URL set starts an embedded NATS, serves, reports
// ready, takes the admin key from the environment, and exits 0 on SIGTERM
// (its context ending) after draining.
func TestServeAndShutDown(t *testing.T) {
	testdb.Require(t, dsn)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	// A NATS server of the test's own, as a deployment would have.
	ns, err := natsserver.Start(context.Background(), natsserver.Options{Addr: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	env := map[string]string{
		"NATS_URL":                  ns.ClientURL(),
		"DATABASE_URL":              dsn,
		"LEDGER_HTTP_ADDR":          addr,
		"LEDGER_DATA_DIR":           t.TempDir(),
		"LEDGER_EMBEDDED_NATS_ADDR": "127.0.0.1:0",
		"LEDGER_ADMIN_KEY":          "ledger_test_admin_" + "5b0e9d2c7a41f8366e1d0c9b8a7f2e4d3c6b5a49081726354f3e2d1c0b9a8f7e",
		// The test's webhook receiver listens on 127.0.0.1.
		"LEDGER_WEBHOOK_ALLOW_PRIVATE": "true",
		"LEDGER_ENCRYPTION_KEY":        testEncryptionKey,
		"LEDGER_CORS_ORIGINS":          "https://app.example.com",
	}
	// An endpoint stored before encryption was turned on: ledgerd seals
	// its secret at startup.
	db, err := pg.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old, _, err := webhook.New(db, webhook.Options{AllowPrivate: true}).CreateEndpoint(context.Background(),
		webhook.NewEndpoint{URL: "http://127.0.0.1:9/before-the-key"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(context.Background(), `UPDATE webhook_endpoints SET deleted_at = now() WHERE id = $1`, old.ID); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var logs safeBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, &logs, &logs) }()

	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("not ready in time (last: %v)\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// ledgerctl finds the database and NATS server through the data dir.
	for name, want := range map[string]string{databaseURLFile: dsn, natsURLFile: ns.ClientURL()} {
		if b, err := os.ReadFile(filepath.Join(env["LEDGER_DATA_DIR"], name)); err != nil || strings.TrimSpace(string(b)) != want {
			t.Errorf("%s: %q %v, want %q", name, b, err, want)
		}
	}
	req, _ := http.NewRequest("GET", base+"/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+env["LEDGER_ADMIN_KEY"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "admin") {
		t.Fatalf("whoami with LEDGER_ADMIN_KEY: %d %s", resp.StatusCode, body)
	}
	// A wallet's life over real HTTP: customer, wallet, grant, debit, balance.
	call := func(method, path, body string, want int) string {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+env["LEDGER_ADMIN_KEY"])
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
		}
		return string(b)
	}
	// The app's webhook receiver, checking every signature.
	hook := newReceiver(t)
	ep := call("POST", "/v1/webhook-endpoints", `{"url":"`+hook.URL+`/hooks"}`, 201)
	hook.secret = jsonField(t, ep, "secret")
	epID := jsonField(t, ep, "id")
	// Both secrets are stored sealed, the new one and the one from before.
	for _, id := range []string{epID, old.ID.String()} {
		var stored string
		if err := db.Pool.QueryRow(context.Background(), `SELECT secret FROM webhook_endpoints WHERE id = $1`, id).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(stored, "enc:v1:") {
			t.Fatalf("endpoint %s: secret stored as %.12q…, want it sealed with LEDGER_ENCRYPTION_KEY", id, stored)
		}
	}

	call("POST", "/v1/customers", `{"id":"acme-e2e","name":"Acme"}`, 201)
	wl := call("POST", "/v1/wallets", `{"customer_id":"acme-e2e","asset":"CREDITS","overage_policy":"block"}`, 201)
	id := wl[strings.Index(wl, `"id":"`)+6:][:36]
	call("POST", "/v1/wallets/"+id+"/grants", `{"amount":"100","kind":"paid"}`, 201)
	if d := call("POST", "/v1/wallets/"+id+"/debits", `{"amount":"0.000003"}`, 201); !strings.Contains(d, `"available":"99.999997"`) {
		t.Fatalf("debit: %s", d)
	}
	call("POST", "/v1/wallets/"+id+"/debits", `{"amount":"100"}`, 402)
	if b := call("GET", "/v1/wallets/"+id+"/balance", "", 200); !strings.Contains(b, `"consumed":"0.000003"`) {
		t.Fatalf("balance: %s", b)
	}

	// Metered usage over NATS: a meter, a price, an event published the way
	// an app would, and the balance moves.
	call("POST", "/v1/meters", `{"code":"e2e_tokens","event_name":"completion","aggregation":"sum","property":"tokens"}`, 201)
	call("POST", "/v1/prices", `{"meter_code":"e2e_tokens","asset":"CREDITS","model":"per_unit","unit_price":"0.001"}`, 201)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	msg := nats.NewMsg("ledger.events.acme-e2e")
	msg.Header.Set("Nats-Msg-Id", "evt-1")
	msg.Data = []byte(`{"event_id":"evt-1","customer_id":"acme-e2e","event_name":"completion","properties":{"tokens":1500}}`)
	if err := nc.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; {
		b := call("GET", "/v1/wallets/"+id+"/balance", "", 200)
		if strings.Contains(b, `"consumed":"1.500003"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the NATS event never reached the balance: %s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if u := call("GET", "/v1/customers/acme-e2e/usage?meter=e2e_tokens", "", 200); !strings.Contains(u, `"total":"1500"`) {
		t.Fatalf("usage: %s", u)
	}

	// Past 50% used: the threshold alert reaches the app's webhook, signed.
	call("POST", "/v1/wallets/"+id+"/debits", `{"amount":"60"}`, 201)
	ev := hook.wait(t, "wallet.threshold_reached")
	if !strings.Contains(string(ev.body), `"threshold":50`) || !strings.Contains(string(ev.body), `"wallet_id":"`+id+`"`) {
		t.Fatalf("threshold event: %s", ev.body)
	}
	// The cycle closes once; invoice.created follows.
	inv := call("POST", "/v1/wallets/"+id+"/close-cycle", "", 201)
	if again := call("POST", "/v1/wallets/"+id+"/close-cycle", "", 201); jsonField(t, again, "id") != jsonField(t, inv, "id") {
		t.Fatalf("second close: %s, first %s", again, inv)
	}
	hook.wait(t, "invoice.created")
	log := call("GET", "/v1/webhook-endpoints/"+epID+"/deliveries", "", 200)
	if !strings.Contains(log, `"status":"succeeded"`) || !strings.Contains(log, `"event_type":"invoice.created"`) {
		t.Fatalf("delivery log: %s", log)
	}
	t.Logf("delivery log: %s", log)

	// The customer's portal, served by ledgerd: the token becomes a cookie,
	// the page shows the customer and the invoice.
	tok := jsonField(t, call("POST", "/v1/customers/acme-e2e/portal-tokens", "{}", 201), "key")
	jar, _ := cookiejar.New(nil)
	resp, err = (&http.Client{Jar: jar}).Get(base + "/portal?token=" + tok)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.RawQuery != "" || !strings.Contains(string(page), "Acme") ||
		!strings.Contains(string(page), "/portal/invoices/"+jsonField(t, inv, "id")) {
		t.Fatalf("portal: %d at %s\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	// A browser app of a listed origin may call the API with the token.
	pre, _ := http.NewRequest("OPTIONS", base+"/v1/wallets/"+id+"/balance", nil)
	pre.Header.Set("Origin", "https://app.example.com")
	pre.Header.Set("Access-Control-Request-Method", "GET")
	if resp, err = http.DefaultClient.Do(pre); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("CORS preflight: %d %v", resp.StatusCode, resp.Header)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ledgerd did not stop")
	}
	if !strings.Contains(logs.String(), "stopped cleanly") {
		t.Fatalf("no clean stop in the log:\n%s", logs.String())
	}
}

// receiver is an app's webhook endpoint: it checks the Standard Webhooks
// signature of every delivery (with code of its own, not the sender's).
type receiver struct {
	*httptest.Server
	secret string
	mu     sync.Mutex
	got    []delivery
}

type delivery struct {
	id, typ string
	body    []byte
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		id, ts := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp")
		r.mu.Lock()
		defer r.mu.Unlock()
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(r.secret, "whsec_"))
		if err != nil {
			t.Errorf("secret %q: %v", r.secret, err)
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + ts + "."))
		mac.Write(body)
		want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		if !slices.Contains(strings.Fields(req.Header.Get("webhook-signature")), want) {
			t.Errorf("delivery %s: signature %q, want %q", id, req.Header.Get("webhook-signature"), want)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var env struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		}
		if err := json.Unmarshal(body, &env); err != nil || env.ID != id {
			t.Errorf("delivery body %s (id header %s): %v", body, id, err)
		}
		r.got = append(r.got, delivery{id: id, typ: env.Type, body: body})
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	return r
}

// wait returns the first delivery of type typ, waiting for it.
func (r *receiver) wait(t *testing.T, typ string) delivery {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		r.mu.Lock()
		for _, d := range r.got {
			if d.typ == typ {
				r.mu.Unlock()
				return d
			}
		}
		r.mu.Unlock()
	}
	t.Fatalf("no %s webhook arrived", typ)
	return delivery{}
}

func jsonField(t *testing.T, body, field string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	v, _ := m[field].(string)
	return v
}

type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// At startup ledgerd warns once when endpoints' secrets are encrypted and
// it has no key, or another key; it does not stop.
func TestSealWebhookSecretsWarns(t *testing.T) {
	testdb.Require(t, dsn)
	ctx := context.Background()
	db, err := pg.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key, err := secretbox.ParseKey(testEncryptionKey)
	if err != nil {
		t.Fatal(err)
	}
	right, err := secretbox.New(key)
	if err != nil {
		t.Fatal(err)
	}
	other, err := secretbox.New(bytes.Repeat([]byte{7}, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	// Endpoints earlier tests left behind would be counted too.
	if _, err := db.Pool.Exec(ctx, `UPDATE webhook_endpoints SET deleted_at = now() WHERE deleted_at IS NULL`); err != nil {
		t.Fatal(err)
	}
	sealing := webhook.New(db, webhook.Options{SecretBox: right})
	e, _, err := sealing.CreateEndpoint(ctx, webhook.NewEndpoint{URL: "https://93.184.216.34/sealed"})
	if err != nil {
		t.Fatal(err)
	}
	defer sealing.DeleteEndpoint(ctx, e.ID)

	for _, tc := range []struct {
		name string
		box  *secretbox.Box
		want string // "" no warning
	}{
		{"no key", nil, "LEDGER_ENCRYPTION_KEY is not set"},
		{"another key", other, "LEDGER_ENCRYPTION_KEY does not decrypt"},
		{"the key", right, ""},
	} {
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		sealWebhookSecrets(ctx, webhook.New(db, webhook.Options{SecretBox: tc.box}), tc.box != nil, log)
		warnings := strings.Count(logs.String(), "level=WARN")
		switch {
		case tc.want == "" && warnings != 0:
			t.Errorf("%s: warned\n%s", tc.name, logs.String())
		case tc.want != "" && (warnings != 1 || !strings.Contains(logs.String(), tc.want) || !strings.Contains(logs.String(), "endpoints=1")):
			t.Errorf("%s: want one warning saying %q about 1 endpoint, got\n%s", tc.name, tc.want, logs.String())
		}
	}
}
