package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/creditledger/creditledger/api"
	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/billing"
	"github.com/creditledger/creditledger/client"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/testdb"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/wallet"
	"github.com/creditledger/creditledger/webhook"
)

var dsn string

func TestMain(m *testing.M) {
	os.Exit(testdb.Main(m, &dsn, func(ctx context.Context, url string) error {
		db, err := pg.Open(ctx, url)
		if err != nil {
			return err
		}
		defer db.Close()
		r, err := ledger.Verify(ctx, db)
		if err != nil {
			return err
		}
		if !r.OK() {
			return errors.New("ledger verify failed")
		}
		return nil
	}))
}

// server runs the real API (wallets, metering, billing) on a loopback
// listener and returns its URL and an admin key.
func server(t *testing.T) (string, string) {
	t.Helper()
	testdb.Require(t, dsn)
	ctx := context.Background()
	db, err := pg.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	l, err := ledger.New(db, ledger.Options{Modules: []ledger.Module{metering.Module(), billing.Module(), wallet.Module()}})
	if err != nil {
		t.Fatal(err)
	}
	keys := apikey.NewStore(db)
	admin, _, err := keys.Create(ctx, apikey.NewKey{Scope: apikey.Admin, Name: "client test"})
	if err != nil {
		t.Fatal(err)
	}
	svc := wallet.NewService(l)
	ms := metering.NewService(l, svc, nil)
	bills := billing.NewService(l, svc, ms, nil)
	app := api.New(api.Config{DB: db, Keys: keys,
		Routes:         slices.Concat(api.WalletRoutes(svc), api.InvoiceRoutes(bills), api.MeteringRoutes(ms)),
		CustomerExists: svc.CustomerExists,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln)
	t.Cleanup(func() {
		_ = app.ShutdownWithTimeout(5 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := l.Close(ctx); err != nil {
			t.Errorf("close ledger: %v", err)
		}
	})
	return "http://" + ln.Addr().String(), admin
}

// TestAgainstLedger drives the client through a reservation's life on a
// real ledger: a hold, a capture of less, a void, debits until the wallet
// refuses (402), a retried debit under the same key applied once, a bad
// amount (422) and a customer that exists (409).
func TestAgainstLedger(t *testing.T) {
	url, admin := server(t)
	ctx := context.Background()
	c := client.New(url, admin)

	cu, err := c.CreateCustomer(ctx, client.Customer{ID: "acme", Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateCustomer(ctx, client.Customer{ID: "acme"}); !client.IsConflict(err) {
		t.Fatalf("second customer acme: %v, want 409", err)
	}
	w, err := c.CreateWallet(ctx, cu.ID, "CREDITS", "block")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddGrant(ctx, w.ID, client.Grant{Amount: "100", Kind: "paid"}); err != nil {
		t.Fatal(err)
	}

	h, err := c.Hold(ctx, w.ID, client.HoldRequest{Amount: "30"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Balance(ctx, w.ID)
	if err != nil || b.Available != "70" || b.Held != "30" {
		t.Fatalf("after hold: %+v %v", b, err)
	}
	if h, err = c.Capture(ctx, h.ID, "12.5", ""); err != nil || h.Status != "captured" || h.Captured != "12.5" {
		t.Fatalf("capture: %+v %v", h, err)
	}
	h2, err := c.Hold(ctx, w.ID, client.HoldRequest{Amount: "5"})
	if err != nil {
		t.Fatal(err)
	}
	if h2, err = c.Void(ctx, h2.ID, ""); err != nil || h2.Status != "voided" {
		t.Fatalf("void: %+v %v", h2, err)
	}

	// The same key twice is one debit.
	for range 2 {
		d, err := c.Debit(ctx, w.ID, client.Debit{IdempotencyKey: "debit-once", Amount: "7.5"})
		if err != nil || d.Balance.Available != "80" {
			t.Fatalf("debit: %+v %v", d, err)
		}
	}
	_, err = c.Debit(ctx, w.ID, client.Debit{Amount: "1000"})
	if !client.IsInsufficientCredits(err) {
		t.Fatalf("debit beyond the balance: %v, want 402", err)
	}
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code == "" {
		t.Fatalf("402 without a problem code: %#v", err)
	}
	_, err = c.Debit(ctx, w.ID, client.Debit{Amount: "1.2.3"})
	if !client.IsValidation(err) || !errors.As(err, &ce) || len(ce.Fields) == 0 || ce.Fields[0].Field != "amount" {
		t.Fatalf("bad amount: %#v, want 422 naming amount", err)
	}
	if b, err = c.Balance(ctx, w.ID); err != nil || b.Available != "80" || b.Held != "0" || b.Consumed != "20" {
		t.Fatalf("final balance: %+v %v", b, err)
	}

	res, err := c.SendEvents(ctx, client.Event{EventID: "e1", CustomerID: "acme", EventName: "nothing.metered"})
	if err != nil || res.Accepted+res.Duplicates+len(res.Rejected) != 1 {
		t.Fatalf("events: %+v %v", res, err)
	}
	if _, err := client.New(url, "wrong").Balance(ctx, w.ID); err == nil || errors.As(err, &ce) && ce.Status != 401 {
		t.Fatalf("wrong key: %v, want 401", err)
	}
}

// TestVerifiesLedgerSignatures: what the ledger's webhook signer writes,
// VerifyWebhook accepts, and nothing else.
func TestVerifiesLedgerSignatures(t *testing.T) {
	secret := webhook.NewSecret()
	key, err := webhook.SecretKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"invoice.created"}`)
	ts := time.Now().Unix()
	h := http.Header{}
	h.Set("webhook-id", "msg_9")
	h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	h.Set("webhook-signature", webhook.Sign(key, "msg_9", ts, body))
	if err := client.VerifyWebhook(secret, h, body, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := client.VerifyWebhook(webhook.NewSecret(), h, body, time.Minute); !errors.Is(err, client.ErrWebhookSignature) {
		t.Fatalf("another secret: %v", err)
	}
}
