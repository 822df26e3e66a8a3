package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creditledger/creditledger/billing"
	"github.com/creditledger/creditledger/internal/natsserver"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/wallet"
	"github.com/creditledger/creditledger/webhook"
)

// ctlEnv runs ledgerctl with exactly the variables given.
func ctlEnv(vars map[string]string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, func(k string) string { return vars[k] }, &out, &errb)
	return code, out.String(), errb.String()
}

// TestParsing: --help prints the usage and exits 0 without acting, and
// unknown flags, extra or missing arguments and unknown commands exit 2 —
// all without touching the database, which here does not exist (acting
// would exit 1).
func TestParsing(t *testing.T) {
	vars := map[string]string{"DATABASE_URL": "postgres://postgres@127.0.0.1:1/nothing?sslmode=disable",
		"NATS_URL": "nats://127.0.0.1:1", "LEDGER_DATA_DIR": t.TempDir()}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{nil, 2},
		{[]string{"--help"}, 0},
		{[]string{"help"}, 0},
		{[]string{"help", "customers"}, 0},
		{[]string{"bogus"}, 2},
		{[]string{"verify", "--help"}, 0},
		{[]string{"verify", "-h"}, 0},
		{[]string{"verify", "now"}, 2},
		{[]string{"verify", "--fix"}, 2},
		{[]string{"keys"}, 2},
		{[]string{"keys", "--help"}, 0},
		{[]string{"keys", "rotate"}, 2},
		{[]string{"keys", "create", "--help"}, 0},
		{[]string{"keys", "create", "--scope", "admin", "--help"}, 0},
		{[]string{"keys", "create", "--scope", "admin", "extra"}, 2},
		{[]string{"keys", "list", "--all"}, 2},
		{[]string{"keys", "revoke"}, 2},
		{[]string{"keys", "revoke", "a", "b"}, 2},
		{[]string{"keys", "revoke", "a", "--help"}, 0},
		{[]string{"customers"}, 2},
		{[]string{"customers", "list", "--help"}, 0},
		{[]string{"customers", "list", "--limit", "x"}, 2},
		{[]string{"customers", "list", "--limit", "0"}, 2},
		{[]string{"customers", "list", "acme"}, 2},
		{[]string{"customers", "show"}, 2},
		{[]string{"customers", "show", "a", "b"}, 2},
		{[]string{"customers", "show", "a", "--verbose"}, 2},
		{[]string{"customers", "show", "--help"}, 0},
		{[]string{"wallets", "show", "--help"}, 0},
		{[]string{"wallets", "show"}, 2},
		{[]string{"wallets", "list"}, 2},
		{[]string{"events", "rejected", "--help"}, 0},
		{[]string{"events", "rejected", "x"}, 2},
		{[]string{"events", "rejected", "--since", "1h"}, 2},
		{[]string{"webhooks", "resend", "--help"}, 0},
		{[]string{"webhooks", "resend"}, 2},
		{[]string{"invoices", "list", "--help"}, 0},
		{[]string{"invoices", "list", "--unpaid"}, 2},
		{[]string{"publish", "--help"}, 0},
		{[]string{"publish", "--customer", "a", "--event", "e", "--help"}, 0},
		{[]string{"publish", "--customer", "a"}, 2},
		{[]string{"publish", "--event", "e"}, 2},
		{[]string{"publish", "--customer", "a", "--event", "e", "--properties", "[1]"}, 2},
		{[]string{"publish", "--customer", "a", "--event", "e", "--timestamp", "yesterday"}, 2},
		{[]string{"publish", "--customer", "a", "--event", "e", "extra"}, 2},
		{[]string{"version", "--help"}, 0},
		{[]string{"version", "extra"}, 2},
	} {
		code, out, errs := ctlEnv(vars, tc.args...)
		if code != tc.code {
			t.Errorf("%q: exit %d, want %d\n%s%s", tc.args, code, tc.code, out, errs)
			continue
		}
		switch {
		case code == 0 && !strings.Contains(out, "Usage"):
			t.Errorf("%q: no usage on stdout: %q", tc.args, out)
		case code == 2 && !strings.Contains(errs, "Usage"):
			t.Errorf("%q: no usage on stderr: %q", tc.args, errs)
		}
	}
	if code, out, _ := ctlEnv(vars, "version"); code != 0 || !strings.Contains(out, "go1.") {
		t.Errorf("version: exit %d %q", code, out)
	}
}

// With no DATABASE_URL, ledgerctl uses the database ledgerd wrote to
// <LEDGER_DATA_DIR>/database.url, as `make run` leaves it.
func TestDatabaseFromDataDir(t *testing.T) {
	testdb.Require(t, dsn)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, databaseURLFile), []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := ctlEnv(map[string]string{"LEDGER_DATA_DIR": dir}, "verify"); code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
	other := t.TempDir()
	vars := map[string]string{"LEDGER_DATA_DIR": other, "DATABASE_URL": "postgres://postgres@127.0.0.1:1/x?sslmode=disable"}
	if err := os.WriteFile(filepath.Join(other, databaseURLFile), []byte(dsn), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := ctlEnv(vars, "verify"); code != 1 || !strings.Contains(errs, "127.0.0.1:1") {
		t.Fatalf("DATABASE_URL must win over the file: exit %d %s", code, errs)
	}
}

// TestReads: the operator's read commands show what the services hold.
func TestReads(t *testing.T) {
	testdb.Require(t, dsn)
	ctx := context.Background()
	db, err := pg.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := ledger.New(db, ledger.Options{Shards: 1, Modules: []ledger.Module{metering.Module(), billing.Module(), wallet.Module()}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	ws := wallet.NewService(l)
	cust := "ctl-" + uuid.NewString()[:8]
	if _, err := ws.CreateCustomer(ctx, wallet.Customer{ID: cust, Name: "Operator Test", Email: "ops@example.com"}); err != nil {
		t.Fatal(err)
	}
	w, err := ws.CreateWallet(ctx, wallet.NewWallet{CustomerID: cust, Asset: "CREDITS"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ws.AddGrant(ctx, "g-"+cust, w.ID, wallet.NewGrant{Amount: ledger.MustAmount("40"), Kind: "paid"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ws.Debit(ctx, "d-"+cust, w.ID, wallet.NewDebit{Amount: ledger.MustAmount("2.5")}); err != nil {
		t.Fatal(err)
	}
	ms := metering.NewService(l, ws, nil)
	bad, _ := json.Marshal(map[string]any{"event_id": "ev-" + cust, "customer_id": cust, "event_name": "no.such.meter"})
	if _, err := ms.Ingest(ctx, []json.RawMessage{bad}, metering.IngestOptions{Source: "http"}); err != nil {
		t.Fatal(err)
	}
	res, err := billing.NewService(l, ws, ms, nil).CloseCycle(ctx, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := res.Value()
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"DATABASE_URL": dsn, "LEDGER_DATA_DIR": t.TempDir()}

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"customers", "list"}, []string{cust, "Operator Test", "ops@example.com"}},
		{[]string{"customers", "list", "--query", cust, "--limit", "1"}, []string{cust}},
		{[]string{"customers", "show", cust}, []string{"Operator Test", w.ID.String(), "37.5"}},
		{[]string{"wallets", "show", w.ID.String()}, []string{"available  37.5", "consumed   2.5", "granted    40"}},
		{[]string{"events", "rejected", "--customer", cust}, []string{"ev-" + cust, "no_meter"}},
		{[]string{"invoices", "list", "--customer", cust}, []string{inv.ID.String(), cust, "issued"}},
		{[]string{"invoices", "list", "--status", "void", "--customer", cust}, []string{"INVOICE"}},
	} {
		code, out, errs := ctlEnv(vars, tc.args...)
		if code != 0 {
			t.Errorf("%q: exit %d\n%s", tc.args, code, errs)
			continue
		}
		for _, s := range tc.want {
			if !strings.Contains(out, s) {
				t.Errorf("%q: no %q in\n%s", tc.args, s, out)
			}
		}
	}
	if code, _, errs := ctlEnv(vars, "customers", "show", "ghost-"+cust); code != 1 || errs == "" {
		t.Errorf("unknown customer: exit %d %q", code, errs)
	}
	if code, _, errs := ctlEnv(vars, "wallets", "show", uuid.NewString()); code != 1 || errs == "" {
		t.Errorf("unknown wallet: exit %d %q", code, errs)
	}

	// webhooks resend: a failed delivery is pending again.
	ep, _, err := webhook.New(db, webhook.Options{AllowPrivate: true}).CreateEndpoint(ctx, webhook.NewEndpoint{URL: "http://127.0.0.1:9/ctl"})
	if err != nil {
		t.Fatal(err)
	}
	did := uuid.New()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, body, status, attempts, created_at)
		VALUES ($1, $2, $3, 'wallet.low_balance', '{}', 'failed', 3, now())`, did, ep.ID, uuid.New()); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := ctlEnv(vars, "webhooks", "resend", did.String()); code != 0 || !strings.Contains(out, "pending") {
		t.Fatalf("resend: exit %d %s%s", code, out, errs)
	}
	var status string
	if err := db.Pool.QueryRow(ctx, `SELECT status FROM webhook_deliveries WHERE id = $1`, did).Scan(&status); err != nil || status != "pending" {
		t.Fatalf("after resend: %q %v", status, err)
	}
	if code, _, _ := ctlEnv(vars, "webhooks", "resend", uuid.NewString()); code != 1 {
		t.Errorf("resend of an unknown delivery: exit %d, want 1", code)
	}
}

// TestPublish: the event reaches the stream on ledger.events.<customer>
// with Nats-Msg-Id, on the server named in <LEDGER_DATA_DIR>/nats.url.
func TestPublish(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns, err := natsserver.Start(ctx, natsserver.Options{Addr: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "LEDGER_EVENTS", Subjects: []string{"ledger.events.>"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, natsURLFile), []byte(ns.ClientURL()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"LEDGER_DATA_DIR": dir}
	code, out, errs := ctlEnv(vars, "publish", "--customer", "acme", "--event", "tokens", "--properties", `{"tokens":"1200"}`, "--id", "ev-42")
	if code != 0 || !strings.Contains(out, "ev-42") {
		t.Fatalf("publish: exit %d %s%s", code, out, errs)
	}
	msg, err := stream.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(msg.Data, &ev); err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "ledger.events.acme" || msg.Header.Get("Nats-Msg-Id") != "ev-42" || ev["event_name"] != "tokens" {
		t.Fatalf("subject %s id %q body %s", msg.Subject, msg.Header.Get("Nats-Msg-Id"), msg.Data)
	}
	if code, _, errs := ctlEnv(map[string]string{"NATS_URL": "nats://127.0.0.1:1", "LEDGER_DATA_DIR": dir}, "publish", "--customer", "a", "--event", "e"); code != 1 || !strings.Contains(errs, "127.0.0.1:1") {
		t.Fatalf("unreachable NATS_URL: exit %d %s", code, errs)
	}
}
