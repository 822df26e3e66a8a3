package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/creditledger/creditledger/api"
	"github.com/creditledger/creditledger/api/auth"
	"github.com/creditledger/creditledger/api/portal"
	"github.com/creditledger/creditledger/api/problem"
	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/billing"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/wallet"
)

// walletEnv is an app with the wallet and invoice routes on a real ledger
// and poster.
type walletEnv struct {
	*env
}

func newWalletEnv(t *testing.T, edit func(*api.Config)) *walletEnv {
	t.Helper()
	e := newEnv(t, func(c *api.Config) {
		l, err := ledger.New(c.DB, ledger.Options{Modules: []ledger.Module{metering.Module(), billing.Module(), wallet.Module()}})
		if err != nil {
			t.Fatal(err)
		}
		// Registered after newEnv's db.Close, so it runs before it: the
		// poster drains while the pool is still open.
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := l.Close(ctx); err != nil {
				t.Errorf("close ledger: %v", err)
			}
		})
		svc := wallet.NewService(l)
		ms := metering.NewService(l, svc, nil)
		bills := billing.NewService(l, svc, ms, nil)
		c.Routes = slices.Concat(api.WalletRoutes(svc), api.InvoiceRoutes(bills), api.PlanRoutes(bills), api.MeteringRoutes(ms))
		c.CustomerExists = svc.CustomerExists
		c.Pages = []api.HTMLPages{portal.New(portal.Config{Keys: c.Keys, Wallets: svc, Bills: bills, Meters: ms, DB: c.DB})}
		if edit != nil {
			edit(c)
		}
	})
	return &walletEnv{e}
}

// send is one request. Unlike env.do it does not touch t, so goroutines
// may call it.
func (e *env) send(method, path, key string, header map[string]string, body any) (response, error) {
	var rd io.Reader = http.NoBody
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return response{}, err
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
	for k, v := range header {
		req.Header[k] = []string{v} // as given, not canonicalized or checked
	}
	resp, err := e.app.Test(req, 30_000)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{resp.StatusCode, resp.Header, b}, nil
}

// doH is env.do with extra headers.
func (e *env) doH(t *testing.T, method, path, key string, header map[string]string, body any) response {
	t.Helper()
	r, err := e.send(method, path, key, header, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func idem(key string) map[string]string { return map[string]string{api.HeaderIdempotencyKey: key} }

// want checks a success status and decodes the body.
func want[T any](t *testing.T, r response, status int) T {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d\n%s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q", ct)
	}
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, r.body)
	}
	return v
}

// wantField checks that a validation problem names field.
func wantField(t *testing.T, p map[string]any, field string) {
	t.Helper()
	errs, _ := p["errors"].([]any)
	for _, e := range errs {
		if m, _ := e.(map[string]any); m["field"] == field {
			return
		}
	}
	t.Fatalf("problem does not name field %q: %v", field, p)
}

func sameAmount(t *testing.T, what, got, want string) {
	t.Helper()
	g, err := ledger.ParseAmount(got)
	if err != nil {
		t.Fatalf("%s: %q is not an amount: %v", what, got, err)
	}
	if !g.Equal(ledger.MustAmount(want)) {
		t.Fatalf("%s = %s, want %s", what, got, want)
	}
}

func uniq(prefix string) string { return prefix + "_" + uuid.NewString()[:8] }

// Wire shapes, as a client reads them.
type (
	customerJSON struct {
		ID        string          `json:"id"`
		Name      string          `json:"name"`
		Metadata  json.RawMessage `json:"metadata"`
		CreatedAt time.Time       `json:"created_at"`
	}
	walletJSON struct {
		ID              string  `json:"id"`
		CustomerID      string  `json:"customer_id"`
		Asset           string  `json:"asset"`
		OveragePolicy   string  `json:"overage_policy"`
		OverageLimit    *string `json:"overage_limit"`
		AlertThresholds []int   `json:"alert_thresholds"`
	}
	grantJSON struct {
		ID        string `json:"id"`
		WalletID  string `json:"wallet_id"`
		Kind      string `json:"kind"`
		Amount    string `json:"amount"`
		Remaining string `json:"remaining"`
		Priority  int    `json:"priority"`
		Status    string `json:"status"`
		Voided    string `json:"voided"`
	}
	balanceJSON struct {
		WalletID  string `json:"wallet_id"`
		Asset     string `json:"asset"`
		Available string `json:"available"`
		Held      string `json:"held"`
		Overage   string `json:"overage"`
		Granted   string `json:"granted"`
		Consumed  string `json:"consumed"`
		Expired   string `json:"expired"`
		Voided    string `json:"voided"`
		Grants    []struct {
			ID        string `json:"id"`
			Remaining string `json:"remaining"`
			Priority  int    `json:"priority"`
		} `json:"grants"`
		AsOf time.Time `json:"as_of"`
	}
	debitJSON struct {
		EntryID string      `json:"entry_id"`
		Amount  string      `json:"amount"`
		Covered string      `json:"covered"`
		Overage string      `json:"overage"`
		Balance balanceJSON `json:"balance"`
	}
	holdJSON struct {
		ID       string `json:"id"`
		WalletID string `json:"wallet_id"`
		Status   string `json:"status"`
		Amount   string `json:"amount"`
		Captured string `json:"captured"`
	}
	entryJSON struct {
		ID        string    `json:"id"`
		Kind      string    `json:"kind"`
		Status    string    `json:"status"`
		CreatedAt time.Time `json:"created_at"`
		Postings  []struct {
			AccountID string `json:"account_id"`
			Code      string `json:"account_code"`
			Asset     string `json:"asset"`
			Direction string `json:"direction"`
			Amount    string `json:"amount"`
		} `json:"postings"`
	}
	pageJSON[T any] struct {
		Data       []T     `json:"data"`
		NextCursor *string `json:"next_cursor"`
	}
)

// fixture is a customer with one wallet.
type fixture struct {
	customer string
	wallet   string
}

func (w *walletEnv) newCustomer(t *testing.T) string {
	t.Helper()
	id := uniq("cus")
	want[customerJSON](t, w.do(t, "POST", "/v1/customers", w.admin, map[string]any{"id": id}), 201)
	return id
}

func (w *walletEnv) newWallet(t *testing.T, body map[string]any) fixture {
	t.Helper()
	f := fixture{customer: w.newCustomer(t)}
	req := map[string]any{"customer_id": f.customer, "asset": "CREDITS", "overage_policy": "block"}
	for k, v := range body {
		req[k] = v
	}
	f.wallet = want[walletJSON](t, w.do(t, "POST", "/v1/wallets", w.admin, req), 201).ID
	return f
}

func (w *walletEnv) grant(t *testing.T, walletID string, body map[string]any) grantJSON {
	t.Helper()
	return want[grantJSON](t, w.do(t, "POST", "/v1/wallets/"+walletID+"/grants", w.admin, body), 201)
}

func (w *walletEnv) balance(t *testing.T, walletID string) balanceJSON {
	t.Helper()
	return want[balanceJSON](t, w.do(t, "GET", "/v1/wallets/"+walletID+"/balance", w.admin, nil), 200)
}

// money is what must not move when a request is refused: the balance's
// amounts and the newest journal entry.
func (w *walletEnv) money(t *testing.T, walletID string) string {
	t.Helper()
	b := w.balance(t, walletID)
	p := want[pageJSON[entryJSON]](t, w.do(t, "GET", "/v1/wallets/"+walletID+"/entries?limit=1", w.admin, nil), 200)
	newest := ""
	if len(p.Data) > 0 {
		newest = p.Data[0].ID
	}
	return fmt.Sprintf("available=%s held=%s overage=%s granted=%s consumed=%s expired=%s voided=%s newest=%s",
		b.Available, b.Held, b.Overage, b.Granted, b.Consumed, b.Expired, b.Voided, newest)
}

func TestWalletHappyPath(t *testing.T) {
	w := newWalletEnv(t, nil)
	cus := uniq("cus")

	c := want[customerJSON](t, w.do(t, "POST", "/v1/customers", w.admin,
		map[string]any{"id": cus, "name": "Ada", "metadata": map[string]any{"plan": "pro"}}), 201)
	if c.ID != cus || c.Name != "Ada" || c.CreatedAt.IsZero() {
		t.Fatalf("customer %+v", c)
	}
	if got := want[customerJSON](t, w.do(t, "GET", "/v1/customers/"+cus, w.admin, nil), 200); got.ID != cus {
		t.Fatalf("GET customer %+v", got)
	}
	wantProblem(t, w.do(t, "POST", "/v1/customers", w.admin, map[string]any{"id": cus}), 409, problem.Conflict)
	if gen := want[customerJSON](t, w.do(t, "POST", "/v1/customers", w.admin, nil), 201); gen.ID == "" {
		t.Fatal("no id generated for a customer created without one")
	}

	wal := want[walletJSON](t, w.do(t, "POST", "/v1/wallets", w.admin,
		map[string]any{"customer_id": cus, "asset": "CREDITS", "overage_policy": "block"}), 201)
	if wal.ID == "" || wal.CustomerID != cus || wal.Asset != "CREDITS" || wal.OveragePolicy != "block" {
		t.Fatalf("wallet %+v", wal)
	}
	if fmt.Sprint(wal.AlertThresholds) != "[50 80 100]" {
		t.Fatalf("default alert thresholds %v, want [50 80 100]", wal.AlertThresholds)
	}
	wantProblem(t, w.do(t, "POST", "/v1/wallets", w.admin,
		map[string]any{"customer_id": cus, "asset": "CREDITS", "overage_policy": "allow"}), 409, problem.Conflict)
	if got := want[walletJSON](t, w.do(t, "GET", "/v1/wallets/"+wal.ID, w.admin, nil), 200); got.ID != wal.ID || got.CustomerID != cus {
		t.Fatalf("GET wallet %+v, created %+v", got, wal)
	}
	list := want[pageJSON[walletJSON]](t, w.do(t, "GET", "/v1/customers/"+cus+"/wallets", w.admin, nil), 200)
	if len(list.Data) != 1 || list.Data[0].ID != wal.ID || list.NextCursor != nil {
		t.Fatalf("customer's wallets %+v", list)
	}
	wantProblem(t, w.do(t, "GET", "/v1/customers/"+uniq("nobody")+"/wallets", w.admin, nil), 404, problem.NotFound)

	beforeGrant := time.Now().UTC()
	g := w.grant(t, wal.ID, map[string]any{"amount": "100", "kind": "paid"})
	if g.ID == "" || g.WalletID != wal.ID || g.Kind != "paid" || g.Priority != 50 || g.Status != "active" {
		t.Fatalf("grant %+v", g)
	}
	sameAmount(t, "grant amount", g.Amount, "100")
	grants := want[pageJSON[grantJSON]](t, w.do(t, "GET", "/v1/wallets/"+wal.ID+"/grants", w.admin, nil), 200)
	if len(grants.Data) != 1 || grants.Data[0].ID != g.ID || grants.NextCursor != nil {
		t.Fatalf("grants %+v", grants)
	}
	if !bytes.Contains(w.do(t, "GET", "/v1/wallets/"+wal.ID+"/grants", w.admin, nil).body, []byte(`"next_cursor":null`)) {
		t.Fatal(`grants list lacks "next_cursor":null`)
	}
	if got := want[grantJSON](t, w.do(t, "GET", "/v1/grants/"+g.ID, w.admin, nil), 200); got.ID != g.ID {
		t.Fatalf("GET grant %+v", got)
	}
	beforeDebit := time.Now().UTC()

	d := want[debitJSON](t, w.do(t, "POST", "/v1/wallets/"+wal.ID+"/debits", w.admin,
		map[string]any{"amount": "30", "description": "gpt-4o, 30k tokens"}), 201)
	if d.EntryID == "" {
		t.Fatal("debit has no entry_id")
	}
	sameAmount(t, "debit amount", d.Amount, "30")
	sameAmount(t, "covered", d.Covered, "30")
	sameAmount(t, "overage", d.Overage, "0")
	sameAmount(t, "balance.available", d.Balance.Available, "70")

	b := w.balance(t, wal.ID)
	if b.WalletID != wal.ID || b.Asset != "CREDITS" || b.AsOf.IsZero() {
		t.Fatalf("balance %+v", b)
	}
	sameAmount(t, "available", b.Available, "70")
	sameAmount(t, "granted", b.Granted, "100")
	sameAmount(t, "consumed", b.Consumed, "30")
	sameAmount(t, "held", b.Held, "0")
	sameAmount(t, "overage", b.Overage, "0")
	if len(b.Grants) != 1 || b.Grants[0].ID != g.ID {
		t.Fatalf("balance grants %+v", b.Grants)
	}
	sameAmount(t, "grants[0].remaining", b.Grants[0].Remaining, "70")

	// Past balances: before the grant nothing, between grant and debit 100.
	for _, tc := range []struct {
		at        time.Time
		available string
	}{{beforeGrant, "0"}, {beforeDebit, "100"}} {
		r := w.do(t, "GET", "/v1/wallets/"+wal.ID+"/balance?at="+url.QueryEscape(tc.at.Format(time.RFC3339Nano)), w.admin, nil)
		past := want[balanceJSON](t, r, 200)
		sameAmount(t, "available at "+tc.at.String(), past.Available, tc.available)
	}

	page := want[pageJSON[entryJSON]](t, w.do(t, "GET", "/v1/wallets/"+wal.ID+"/entries", w.admin, nil), 200)
	if len(page.Data) < 2 || page.NextCursor != nil {
		t.Fatalf("entries: want the grant and the debit, got %+v", page)
	}
	e := page.Data[0] // newest first
	if e.ID != d.EntryID || e.Status != "posted" {
		t.Fatalf("newest entry %+v, want the debit %s", e, d.EntryID)
	}
	var debits, credits ledger.Amount
	for _, p := range e.Postings {
		a := ledger.MustAmount(p.Amount)
		switch p.Direction {
		case "debit":
			debits = debits.Add(a)
		case "credit":
			credits = credits.Add(a)
		default:
			t.Fatalf("posting direction %q", p.Direction)
		}
		if p.AccountID == "" || p.Asset != "CREDITS" {
			t.Fatalf("posting %+v", p)
		}
	}
	if !debits.Equal(ledger.MustAmount("30")) || !credits.Equal(debits) {
		t.Fatalf("debit entry postings %+v: debits %s, credits %s", e.Postings, debits, credits)
	}

	// Paging through the journal one entry at a time sees each entry once.
	var seen []string
	next := ""
	for range 10 {
		path := "/v1/wallets/" + wal.ID + "/entries?limit=1"
		if next != "" {
			path += "&cursor=" + url.QueryEscape(next)
		}
		p := want[pageJSON[entryJSON]](t, w.do(t, "GET", path, w.admin, nil), 200)
		for _, e := range p.Data {
			seen = append(seen, e.ID)
		}
		if p.NextCursor == nil {
			break
		}
		next = *p.NextCursor
	}
	var all []string
	for _, e := range page.Data {
		all = append(all, e.ID)
	}
	if fmt.Sprint(seen) != fmt.Sprint(all) {
		t.Fatalf("paged entries %v, want %v", seen, all)
	}
}

func TestDebitOverage(t *testing.T) {
	w := newWalletEnv(t, nil)
	f := w.newWallet(t, map[string]any{"overage_policy": "allow", "overage_limit": "20"})
	w.grant(t, f.wallet, map[string]any{"amount": "10", "kind": "promotional"})
	debits := "/v1/wallets/" + f.wallet + "/debits"

	d := want[debitJSON](t, w.do(t, "POST", debits, w.admin, map[string]any{"amount": "25"}), 201)
	sameAmount(t, "covered", d.Covered, "10")
	sameAmount(t, "overage", d.Overage, "15")
	sameAmount(t, "balance.overage", d.Balance.Overage, "15")
	sameAmount(t, "balance.available", d.Balance.Available, "0")

	// 15 + 10 is past the limit of 20: refused whole.
	before := w.money(t, f.wallet)
	wantProblem(t, w.do(t, "POST", debits, w.admin, map[string]any{"amount": "10"}), 402, problem.InsufficientCredits)
	if after := w.money(t, f.wallet); after != before {
		t.Fatalf("a refused debit moved money:\n%s\n%s", before, after)
	}
	d = want[debitJSON](t, w.do(t, "POST", debits, w.admin, map[string]any{"amount": "5"}), 201)
	sameAmount(t, "overage", d.Overage, "5")
	sameAmount(t, "balance.overage", d.Balance.Overage, "20")

	// With policy block a debit beyond the credits is refused whole.
	blocked := w.newWallet(t, nil)
	w.grant(t, blocked.wallet, map[string]any{"amount": "10", "kind": "paid"})
	before = w.money(t, blocked.wallet)
	wantProblem(t, w.do(t, "POST", "/v1/wallets/"+blocked.wallet+"/debits", w.admin, map[string]any{"amount": "10.000000000001"}),
		402, problem.InsufficientCredits)
	if after := w.money(t, blocked.wallet); after != before {
		t.Fatalf("a refused debit moved money:\n%s\n%s", before, after)
	}
}

// replays sends the same request twice under one key and checks that the
// second answer is the first, byte for byte, marked as a replay.
func (w *walletEnv) replays(t *testing.T, method, path string, body any, status int) response {
	t.Helper()
	key := uniq("key")
	first := w.doH(t, method, path, w.admin, idem(key), body)
	if first.status != status {
		t.Fatalf("%s %s: status %d, want %d\n%s", method, path, first.status, status, first.body)
	}
	if h := first.header.Get(api.HeaderIdempotentReplayed); h != "" {
		t.Fatalf("first request marked %s: %q", api.HeaderIdempotentReplayed, h)
	}
	second := w.doH(t, method, path, w.admin, idem(key), body)
	if second.status != first.status || !bytes.Equal(second.body, first.body) {
		t.Fatalf("replay of %s %s differs:\nfirst  %d %s\nreplay %d %s", method, path, first.status, first.body, second.status, second.body)
	}
	if h := second.header.Get(api.HeaderIdempotentReplayed); h != "true" {
		t.Fatalf("replay: %s %q, want true", api.HeaderIdempotentReplayed, h)
	}
	if a, b := first.header.Get("Content-Type"), second.header.Get("Content-Type"); a != b {
		t.Fatalf("replay Content-Type %q, first %q", b, a)
	}
	return first
}

func TestWalletIdempotency(t *testing.T) {
	w := newWalletEnv(t, nil)
	f := w.newWallet(t, nil)
	grants := "/v1/wallets/" + f.wallet + "/grants"
	debits := "/v1/wallets/" + f.wallet + "/debits"
	holds := "/v1/wallets/" + f.wallet + "/holds"

	t.Run("replay answers the original bytes", func(t *testing.T) {
		// Metadata with keys out of order and nesting: a result stored as
		// JSONB, or re-encoded from a map, would come back reordered.
		meta := json.RawMessage(`{"z":1,"a":{"y":[3,2,1],"b":"ü <&>"},"m":null}`)
		w.replays(t, "POST", grants, map[string]any{"amount": "1000", "kind": "paid", "metadata": meta,
			"expires_at": time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339Nano), "description": "top-up"}, 201)
		w.replays(t, "POST", debits, map[string]any{"amount": "12.345", "description": "run", "metadata": meta}, 201)

		h := want[holdJSON](t, w.replays(t, "POST", holds, map[string]any{"amount": "10", "metadata": meta}, 201), 201)
		w.replays(t, "POST", "/v1/holds/"+h.ID+"/capture", map[string]any{"amount": "4"}, 200)
		h = want[holdJSON](t, w.do(t, "POST", holds, w.admin, map[string]any{"amount": "10"}), 201)
		w.replays(t, "POST", "/v1/holds/"+h.ID+"/void", nil, 200)

		g := w.grant(t, f.wallet, map[string]any{"amount": "5", "kind": "promotional", "priority": 99})
		w.replays(t, "POST", "/v1/grants/"+g.ID+"/void", nil, 200)
	})

	t.Run("same key, different request", func(t *testing.T) {
		key := uniq("key")
		want[debitJSON](t, w.doH(t, "POST", debits, w.admin, idem(key), map[string]any{"amount": "1"}), 201)
		before := w.money(t, f.wallet)

		other := w.newWallet(t, nil)
		w.grant(t, other.wallet, map[string]any{"amount": "100", "kind": "paid"})
		otherBefore := w.money(t, other.wallet)
		for _, tc := range []struct {
			name, path string
			body       any
		}{
			{"other amount", debits, map[string]any{"amount": "2"}},
			{"other description", debits, map[string]any{"amount": "1", "description": "x"}},
			{"other wallet", "/v1/wallets/" + other.wallet + "/debits", map[string]any{"amount": "1"}},
			{"other endpoint", grants, map[string]any{"amount": "1", "kind": "paid"}},
			{"other endpoint, hold", holds, map[string]any{"amount": "1"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := w.doH(t, "POST", tc.path, w.admin, idem(key), tc.body)
				wantProblem(t, r, 409, problem.IdempotencyConflict)
				if r.header.Get(api.HeaderIdempotentReplayed) != "" {
					t.Fatal("a conflict is not a replay")
				}
			})
		}
		if after := w.money(t, f.wallet); after != before {
			t.Fatalf("a conflicting request moved money:\n%s\n%s", before, after)
		}
		if after := w.money(t, other.wallet); after != otherBefore {
			t.Fatalf("a conflicting request moved money:\n%s\n%s", otherBefore, after)
		}
	})

	t.Run("replayed rejection", func(t *testing.T) {
		poor := w.newWallet(t, nil)
		w.grant(t, poor.wallet, map[string]any{"amount": "5", "kind": "paid"})
		path := "/v1/wallets/" + poor.wallet + "/debits"
		key := uniq("key")
		first := w.doH(t, "POST", path, w.admin, idem(key), map[string]any{"amount": "50"})
		p1 := wantProblem(t, first, 402, problem.InsufficientCredits)
		// Credits arrive; the key still answers with its recorded refusal.
		w.grant(t, poor.wallet, map[string]any{"amount": "100", "kind": "paid"})
		before := w.money(t, poor.wallet)
		again := w.doH(t, "POST", path, w.admin, idem(key), map[string]any{"amount": "50"})
		p2 := wantProblem(t, again, 402, problem.InsufficientCredits)
		if again.header.Get(api.HeaderIdempotentReplayed) != "true" {
			t.Fatalf("replayed rejection lacks %s: true", api.HeaderIdempotentReplayed)
		}
		if p1["detail"] != p2["detail"] {
			t.Fatalf("replayed rejection detail %q, first %q", p2["detail"], p1["detail"])
		}
		if after := w.money(t, poor.wallet); after != before {
			t.Fatalf("a replayed rejection moved money:\n%s\n%s", before, after)
		}
		// A new key is a new request.
		want[debitJSON](t, w.doH(t, "POST", path, w.admin, idem(uniq("key")), map[string]any{"amount": "50"}), 201)
	})

	t.Run("no key, no deduplication", func(t *testing.T) {
		before := w.balance(t, f.wallet)
		a := want[debitJSON](t, w.do(t, "POST", debits, w.admin, map[string]any{"amount": "1"}), 201)
		r := w.do(t, "POST", debits, w.admin, map[string]any{"amount": "1"})
		b := want[debitJSON](t, r, 201)
		if a.EntryID == b.EntryID || r.header.Get(api.HeaderIdempotentReplayed) != "" {
			t.Fatalf("two requests without a key were deduplicated: %s %s", a.EntryID, b.EntryID)
		}
		after := w.balance(t, f.wallet)
		sameAmount(t, "consumed", after.Consumed, ledger.MustAmount(before.Consumed).Add(ledger.MustAmount("2")).String())
	})

	t.Run("key syntax", func(t *testing.T) {
		u := uuid.NewString() // the longest key, unique to this run
		longest := strings.Repeat("k", 255-len(u)) + u
		want[debitJSON](t, w.doH(t, "POST", debits, w.admin, idem(longest), map[string]any{"amount": "1"}), 201)
		before := w.money(t, f.wallet)
		for _, bad := range []string{strings.Repeat("k", 256), "clé", "tab\there", "del\x7f"} {
			r := w.doH(t, "POST", debits, w.admin, idem(bad), map[string]any{"amount": "1"})
			wantField(t, wantProblem(t, r, 422, problem.Validation), api.HeaderIdempotencyKey)
		}
		if after := w.money(t, f.wallet); after != before {
			t.Fatalf("a refused key moved money:\n%s\n%s", before, after)
		}
	})
}

func TestDebitIdempotencyConcurrent(t *testing.T) {
	w := newWalletEnv(t, nil)
	f := w.newWallet(t, nil)
	w.grant(t, f.wallet, map[string]any{"amount": "100", "kind": "paid"})

	const n = 50
	key := uniq("key")
	path := "/v1/wallets/" + f.wallet + "/debits"
	rs := make([]response, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { rs[i], errs[i] = w.send("POST", path, w.admin, idem(key), map[string]any{"amount": "7"}) })
	}
	wg.Wait()

	replayed := 0
	var entry string
	for i, r := range rs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		d := want[debitJSON](t, r, 201)
		if entry == "" {
			entry = d.EntryID
		}
		if d.EntryID != entry {
			t.Fatalf("entry ids differ: %s and %s", entry, d.EntryID)
		}
		if !bytes.Equal(r.body, rs[0].body) {
			t.Fatalf("bodies differ:\n%s\n%s", rs[0].body, r.body)
		}
		if r.header.Get(api.HeaderIdempotentReplayed) == "true" {
			replayed++
		}
	}
	if replayed != n-1 {
		t.Fatalf("%d responses replayed, want %d", replayed, n-1)
	}
	b := w.balance(t, f.wallet)
	sameAmount(t, "available", b.Available, "93")
	sameAmount(t, "consumed", b.Consumed, "7")
}

func TestHoldsHTTP(t *testing.T) {
	w := newWalletEnv(t, nil)
	f := w.newWallet(t, nil)
	w.grant(t, f.wallet, map[string]any{"amount": "100", "kind": "paid"})
	holds := "/v1/wallets/" + f.wallet + "/holds"

	before := w.money(t, f.wallet)
	wantProblem(t, w.do(t, "POST", holds, w.admin, map[string]any{"amount": "150"}), 402, problem.InsufficientCredits)
	if after := w.money(t, f.wallet); after != before {
		t.Fatalf("a refused hold moved money:\n%s\n%s", before, after)
	}

	h := want[holdJSON](t, w.do(t, "POST", holds, w.admin, map[string]any{"amount": "40", "expires_in_seconds": 60}), 201)
	if h.ID == "" || h.Status != "held" || h.WalletID != f.wallet {
		t.Fatalf("hold %+v", h)
	}
	sameAmount(t, "hold amount", h.Amount, "40")
	b := w.balance(t, f.wallet)
	sameAmount(t, "available", b.Available, "60")
	sameAmount(t, "held", b.Held, "40")
	if got := want[holdJSON](t, w.do(t, "GET", "/v1/holds/"+h.ID, w.admin, nil), 200); got.Status != "held" {
		t.Fatalf("GET hold %+v", got)
	}
	// A second hold cannot take what the first reserves.
	wantProblem(t, w.do(t, "POST", holds, w.admin, map[string]any{"amount": "61"}), 402, problem.InsufficientCredits)

	capture := "/v1/holds/" + h.ID + "/capture"
	c := want[holdJSON](t, w.do(t, "POST", capture, w.admin, map[string]any{"amount": "25"}), 200)
	if c.Status != "captured" {
		t.Fatalf("captured hold %+v", c)
	}
	sameAmount(t, "captured", c.Captured, "25")
	b = w.balance(t, f.wallet)
	sameAmount(t, "available after capture", b.Available, "75")
	sameAmount(t, "held after capture", b.Held, "0")
	sameAmount(t, "consumed after capture", b.Consumed, "25")

	before = w.money(t, f.wallet)
	wantProblem(t, w.do(t, "POST", capture, w.admin, map[string]any{"amount": "1"}), 409, problem.Conflict)
	wantProblem(t, w.do(t, "POST", "/v1/holds/"+h.ID+"/void", w.admin, nil), 409, problem.Conflict)
	if after := w.money(t, f.wallet); after != before {
		t.Fatalf("acting on a closed hold moved money:\n%s\n%s", before, after)
	}

	v := want[holdJSON](t, w.do(t, "POST", holds, w.admin, map[string]any{"amount": "30"}), 201)
	sameAmount(t, "held", w.balance(t, f.wallet).Held, "30")
	voided := want[holdJSON](t, w.do(t, "POST", "/v1/holds/"+v.ID+"/void", w.admin, nil), 200)
	if voided.Status != "voided" {
		t.Fatalf("voided hold %+v", voided)
	}
	b = w.balance(t, f.wallet)
	sameAmount(t, "available after void", b.Available, "75")
	sameAmount(t, "held after void", b.Held, "0")
	before = w.money(t, f.wallet)
	wantProblem(t, w.do(t, "POST", "/v1/holds/"+v.ID+"/capture", w.admin, nil), 409, problem.Conflict)
	if after := w.money(t, f.wallet); after != before {
		t.Fatalf("capture after void moved money:\n%s\n%s", before, after)
	}

	// Capture without an amount takes the whole hold.
	all := want[holdJSON](t, w.do(t, "POST", holds, w.admin, map[string]any{"amount": "5"}), 201)
	got := want[holdJSON](t, w.do(t, "POST", "/v1/holds/"+all.ID+"/capture", w.admin, nil), 200)
	sameAmount(t, "captured, no amount", got.Captured, "5")
	sameAmount(t, "available", w.balance(t, f.wallet).Available, "70")

	for _, path := range []string{
		"/v1/holds/" + uuid.NewString() + "/capture",
		"/v1/holds/" + uuid.NewString() + "/void",
	} {
		wantProblem(t, w.do(t, "POST", path, w.admin, nil), 404, problem.NotFound)
	}
	wantProblem(t, w.do(t, "GET", "/v1/holds/"+uuid.NewString(), w.admin, nil), 404, problem.NotFound)
}

func TestWalletAuthorization(t *testing.T) {
	w := newWalletEnv(t, nil)
	ctx := context.Background()
	own := w.newWallet(t, nil)
	other := w.newWallet(t, nil) // the other portal token's customer
	bare := w.newCustomer(t)     // no wallet yet, for the admin POST /wallets
	g := w.grant(t, own.wallet, map[string]any{"amount": "100", "kind": "paid", "priority": 10})
	toVoid := w.grant(t, own.wallet, map[string]any{"amount": "5", "kind": "paid", "priority": 90})
	h := want[holdJSON](t, w.do(t, "POST", "/v1/wallets/"+own.wallet+"/holds", w.admin, map[string]any{"amount": "2"}), 201)
	toCapture := want[holdJSON](t, w.do(t, "POST", "/v1/wallets/"+own.wallet+"/holds", w.admin, map[string]any{"amount": "2"}), 201)
	toVoidHold := want[holdJSON](t, w.do(t, "POST", "/v1/wallets/"+own.wallet+"/holds", w.admin, map[string]any{"amount": "2"}), 201)

	key := func(scope apikey.Scope, customer string) string {
		k, _, err := w.keys.Create(ctx, apikey.NewKey{Scope: scope, CustomerID: customer, Name: "authz test", TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	keys := []struct {
		name string
		key  string
	}{
		{"none", ""},
		{"unknown", "lk_admin_aaaaaaaaaaaaaaaa_" + strings.Repeat("a", 52)},
		{"ingest", key(apikey.Ingest, "")},
		{"read", key(apikey.Read, "")},
		{"portal-other", key(apikey.Portal, other.customer)},
		{"portal-own", key(apikey.Portal, own.customer)},
		{"admin", w.admin}, // last: its POSTs change things
	}

	W := "/v1/wallets/" + own.wallet
	routes := []struct {
		family, method, path string
		body                 any
		admin                int // what admin gets; the others follow from method
	}{
		{"customers", "GET", "/v1/customers/" + own.customer, nil, 200},
		{"customers", "POST", "/v1/customers", map[string]any{}, 201},
		{"wallets", "GET", W, nil, 200},
		{"wallets", "GET", "/v1/customers/" + own.customer + "/wallets", nil, 200},
		{"wallets", "POST", "/v1/wallets", map[string]any{"customer_id": bare, "asset": "USD", "overage_policy": "block"}, 201},
		{"balance", "GET", W + "/balance", nil, 200},
		{"balance", "GET", W + "/balance?at=" + url.QueryEscape(time.Now().UTC().Format(time.RFC3339)), nil, 200},
		{"grants", "GET", W + "/grants", nil, 200},
		{"grants", "GET", "/v1/grants/" + g.ID, nil, 200},
		{"grants", "POST", W + "/grants", map[string]any{"amount": "1", "kind": "paid"}, 201},
		{"grants", "POST", "/v1/grants/" + toVoid.ID + "/void", nil, 200},
		{"debits", "POST", W + "/debits", map[string]any{"amount": "1"}, 201},
		{"holds", "GET", "/v1/holds/" + h.ID, nil, 200},
		{"holds", "POST", W + "/holds", map[string]any{"amount": "1"}, 201},
		{"holds", "POST", "/v1/holds/" + toCapture.ID + "/capture", nil, 200},
		{"holds", "POST", "/v1/holds/" + toVoidHold.ID + "/void", nil, 200},
		{"entries", "GET", W + "/entries", nil, 200},
	}

	for _, k := range keys {
		for _, rt := range routes {
			var status int
			var code problem.Code
			switch {
			case k.name == "admin":
				status = rt.admin
			case k.name == "none" || k.name == "unknown":
				status, code = 401, problem.Unauthorized
			case rt.method != "GET" || k.name == "ingest":
				status, code = 403, problem.Forbidden
			case k.name == "portal-other":
				status, code = 404, problem.NotFound
			default: // read, portal-own
				status = 200
			}
			t.Run(fmt.Sprintf("%s/%s %s %s", rt.family, k.name, rt.method, rt.path), func(t *testing.T) {
				before := w.money(t, own.wallet)
				r := w.do(t, rt.method, rt.path, k.key, rt.body)
				if code != "" {
					wantProblem(t, r, status, code)
					if after := w.money(t, own.wallet); after != before {
						t.Fatalf("a refused request moved money:\n%s\n%s", before, after)
					}
					return
				}
				if r.status != status {
					t.Fatalf("status %d, want %d\n%s", r.status, status, r.body)
				}
			})
		}
	}

	// A portal token sees its own customer's list and nobody else's.
	portal := keys[5].key
	wantProblem(t, w.do(t, "GET", "/v1/customers/"+other.customer, portal, nil), 404, problem.NotFound)
	wantProblem(t, w.do(t, "GET", "/v1/customers/"+other.customer+"/wallets", portal, nil), 404, problem.NotFound)
	wantProblem(t, w.do(t, "GET", "/v1/wallets/"+other.wallet+"/balance", portal, nil), 404, problem.NotFound)
	// The answer for another customer's wallet is the answer for no wallet.
	a := wantProblem(t, w.do(t, "GET", "/v1/wallets/"+other.wallet, portal, nil), 404, problem.NotFound)
	b := wantProblem(t, w.do(t, "GET", "/v1/wallets/"+uuid.NewString(), portal, nil), 404, problem.NotFound)
	if a["detail"] != b["detail"] {
		t.Fatalf("another customer's wallet (%q) is distinguishable from none (%q)", a["detail"], b["detail"])
	}
}

func TestWalletBadInput(t *testing.T) {
	w := newWalletEnv(t, nil)
	f := w.newWallet(t, nil)
	w.grant(t, f.wallet, map[string]any{"amount": "100", "kind": "paid"})
	h := want[holdJSON](t, w.do(t, "POST", "/v1/wallets/"+f.wallet+"/holds", w.admin, map[string]any{"amount": "10"}), 201)
	bare := w.newCustomer(t)

	W := "/v1/wallets/" + f.wallet
	now := time.Now().UTC()
	ts := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	wal := func(extra map[string]any) map[string]any {
		m := map[string]any{"customer_id": bare, "asset": "CREDITS", "overage_policy": "block"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name         string
		method, path string
		header       map[string]string
		body         any
		status       int
		code         problem.Code
		field        string // for validation errors, "" to not check
	}{
		{"amount as number", "POST", W + "/debits", nil, `{"amount":30}`, 422, problem.Validation, "amount"},
		{"amount as null", "POST", W + "/debits", nil, `{"amount":null}`, 422, problem.Validation, "amount"},
		{"amount missing", "POST", W + "/debits", nil, `{}`, 422, problem.Validation, "amount"},
		{"no body", "POST", W + "/debits", nil, nil, 422, problem.Validation, "amount"},
		{"amount negative", "POST", W + "/debits", nil, `{"amount":"-5"}`, 422, problem.Validation, "amount"},
		{"amount zero", "POST", W + "/debits", nil, `{"amount":"0"}`, 422, problem.Validation, "amount"},
		{"amount with exponent", "POST", W + "/debits", nil, `{"amount":"1e3"}`, 422, problem.Validation, "amount"},
		{"amount with plus", "POST", W + "/debits", nil, `{"amount":"+1"}`, 422, problem.Validation, "amount"},
		{"amount empty", "POST", W + "/debits", nil, `{"amount":""}`, 422, problem.Validation, "amount"},
		{"amount 13 fraction digits", "POST", W + "/debits", nil, `{"amount":"0.0000000000001"}`, 422, problem.Validation, "amount"},
		{"amount 27 integer digits", "POST", W + "/debits", nil, `{"amount":"1` + strings.Repeat("0", 26) + `"}`, 422, problem.Validation, "amount"},
		{"debit metadata not an object", "POST", W + "/debits", nil, `{"amount":"1","metadata":[1]}`, 422, problem.Validation, "metadata"},
		{"unknown field", "POST", W + "/debits", nil, `{"amount":"1","amuont":"2"}`, 422, problem.Validation, "amuont"},
		{"description of wrong type", "POST", W + "/debits", nil, `{"amount":"1","description":5}`, 422, problem.Validation, "description"},
		{"malformed JSON", "POST", W + "/debits", nil, `{"amount":`, 400, problem.BadRequest, ""},
		{"not JSON", "POST", W + "/debits", nil, `amount=1`, 400, problem.BadRequest, ""},
		{"two JSON values", "POST", W + "/debits", nil, `{"amount":"1"}{"amount":"1"}`, 400, problem.BadRequest, ""},
		{"body not an object", "POST", W + "/debits", nil, `["1"]`, 400, problem.BadRequest, ""},

		{"grant amount as number", "POST", W + "/grants", nil, `{"amount":10,"kind":"paid"}`, 422, problem.Validation, "amount"},
		{"grant amount negative", "POST", W + "/grants", nil, `{"amount":"-10","kind":"paid"}`, 422, problem.Validation, "amount"},
		{"grant amount zero", "POST", W + "/grants", nil, `{"amount":"0","kind":"paid"}`, 422, problem.Validation, "amount"},
		{"grant unknown kind", "POST", W + "/grants", nil, `{"amount":"10","kind":"gift"}`, 422, problem.Validation, "kind"},
		{"grant kind missing", "POST", W + "/grants", nil, `{"amount":"10"}`, 422, problem.Validation, "kind"},
		{"grant priority negative", "POST", W + "/grants", nil, `{"amount":"10","kind":"paid","priority":-1}`, 422, problem.Validation, "priority"},
		{"grant priority huge", "POST", W + "/grants", nil, `{"amount":"10","kind":"paid","priority":1000000000000}`, 422, problem.Validation, "priority"},
		{"grant priority fractional", "POST", W + "/grants", nil, `{"amount":"10","kind":"paid","priority":1.5}`, 422, problem.Validation, "priority"},
		{"grant expires before effective", "POST", W + "/grants", nil,
			`{"amount":"10","kind":"paid","effective_at":"` + ts(time.Hour) + `","expires_at":"` + ts(-time.Hour) + `"}`, 422, problem.Validation, "expires_at"},
		{"grant expires at effective", "POST", W + "/grants", nil,
			`{"amount":"10","kind":"paid","effective_at":"` + ts(time.Hour) + `","expires_at":"` + ts(time.Hour) + `"}`, 422, problem.Validation, "expires_at"},
		{"grant expires_at not a time", "POST", W + "/grants", nil, `{"amount":"10","kind":"paid","expires_at":"tomorrow"}`, 422, problem.Validation, "expires_at"},
		{"grant cost_basis as number", "POST", W + "/grants", nil, `{"amount":"10","kind":"paid","cost_basis":9.99}`, 422, problem.Validation, "cost_basis"},
		{"grant on unknown wallet", "POST", "/v1/wallets/" + uuid.NewString() + "/grants", nil, `{"amount":"10","kind":"paid"}`, 404, problem.NotFound, ""},

		{"wallet unknown policy", "POST", "/v1/wallets", nil, wal(map[string]any{"overage_policy": "maybe"}), 422, problem.Validation, "overage_policy"},
		{"wallet overage_limit as number", "POST", "/v1/wallets", nil,
			`{"customer_id":"` + bare + `","asset":"CREDITS","overage_policy":"allow","overage_limit":5}`, 422, problem.Validation, "overage_limit"},
		{"wallet overage_limit negative", "POST", "/v1/wallets", nil, wal(map[string]any{"overage_policy": "allow", "overage_limit": "-5"}), 422, problem.Validation, "overage_limit"},
		{"wallet customer missing", "POST", "/v1/wallets", nil, wal(map[string]any{"customer_id": ""}), 422, problem.Validation, "customer_id"},
		{"wallet unknown customer", "POST", "/v1/wallets", nil, wal(map[string]any{"customer_id": uniq("nobody")}), 422, problem.Validation, "customer_id"},
		{"wallet asset missing", "POST", "/v1/wallets", nil, wal(map[string]any{"asset": ""}), 422, problem.Validation, "asset"},
		{"customer id with slash", "POST", "/v1/customers", nil, map[string]any{"id": "a/b"}, 422, problem.Validation, "id"},
		{"customer metadata not an object", "POST", "/v1/customers", nil, map[string]any{"metadata": "x"}, 422, problem.Validation, "metadata"},

		{"debit on unknown wallet", "POST", "/v1/wallets/" + uuid.NewString() + "/debits", nil, `{"amount":"1"}`, 404, problem.NotFound, ""},
		{"debit on non-UUID wallet", "POST", "/v1/wallets/not-a-uuid/debits", nil, `{"amount":"1"}`, 404, problem.NotFound, ""},
		{"GET unknown wallet", "GET", "/v1/wallets/" + uuid.NewString(), nil, nil, 404, problem.NotFound, ""},
		{"GET non-UUID wallet", "GET", "/v1/wallets/42", nil, nil, 404, problem.NotFound, ""},
		{"GET unknown customer", "GET", "/v1/customers/" + uniq("nobody"), nil, nil, 404, problem.NotFound, ""},
		{"GET non-UUID hold", "GET", "/v1/holds/nope", nil, nil, 404, problem.NotFound, ""},
		{"GET unknown grant", "GET", "/v1/grants/" + uuid.NewString(), nil, nil, 404, problem.NotFound, ""},
		{"void non-UUID grant", "POST", "/v1/grants/nope/void", nil, nil, 404, problem.NotFound, ""},
		{"void unknown grant", "POST", "/v1/grants/" + uuid.NewString() + "/void", nil, nil, 404, problem.NotFound, ""},
		{"entries of unknown wallet", "GET", "/v1/wallets/" + uuid.NewString() + "/entries", nil, nil, 404, problem.NotFound, ""},
		{"balance of unknown wallet", "GET", "/v1/wallets/" + uuid.NewString() + "/balance", nil, nil, 404, problem.NotFound, ""},

		{"capture more than held", "POST", "/v1/holds/" + h.ID + "/capture", nil, `{"amount":"10.000000000001"}`, 422, problem.Validation, "amount"},
		{"capture amount as number", "POST", "/v1/holds/" + h.ID + "/capture", nil, `{"amount":5}`, 422, problem.Validation, "amount"},
		{"capture negative", "POST", "/v1/holds/" + h.ID + "/capture", nil, `{"amount":"-1"}`, 422, problem.Validation, "amount"},
		{"capture unknown field", "POST", "/v1/holds/" + h.ID + "/capture", nil, `{"amout":"1"}`, 422, problem.Validation, "amout"},
		{"void hold with a body", "POST", "/v1/holds/" + h.ID + "/void", nil, `{"reason":"x"}`, 422, problem.Validation, "reason"},
		{"hold amount zero", "POST", W + "/holds", nil, `{"amount":"0"}`, 422, problem.Validation, "amount"},
		{"hold amount as number", "POST", W + "/holds", nil, `{"amount":1}`, 422, problem.Validation, "amount"},
		{"hold expiry negative", "POST", W + "/holds", nil, `{"amount":"1","expires_in_seconds":-1}`, 422, problem.Validation, "expires_in_seconds"},

		{"balance at not RFC 3339", "GET", W + "/balance?at=yesterday", nil, nil, 422, problem.Validation, "at"},
		{"balance at without zone", "GET", W + "/balance?at=2025-01-01T00:00:00", nil, nil, 422, problem.Validation, "at"},
		{"entries bad cursor", "GET", W + "/entries?cursor=bm9wZQ", nil, nil, 422, problem.Validation, "cursor"},
		{"entries limit zero", "GET", W + "/entries?limit=0", nil, nil, 422, problem.Validation, "limit"},
		{"entries limit too big", "GET", W + "/entries?limit=501", nil, nil, 422, problem.Validation, "limit"},
		{"idempotency key too long", "POST", W + "/debits", idem(strings.Repeat("k", 256)), `{"amount":"1"}`, 422, problem.Validation, api.HeaderIdempotencyKey},
		{"idempotency key not ASCII", "POST", W + "/debits", idem("ключ"), `{"amount":"1"}`, 422, problem.Validation, api.HeaderIdempotencyKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.money(t, f.wallet)
			r := w.doH(t, tc.method, tc.path, w.admin, tc.header, tc.body)
			p := wantProblem(t, r, tc.status, tc.code)
			if tc.field != "" {
				wantField(t, p, tc.field)
			}
			if after := w.money(t, f.wallet); after != before {
				t.Fatalf("refused request moved money:\n%s\n%s", before, after)
			}
		})
	}

	// The hold survived the refused captures and voids.
	if got := want[holdJSON](t, w.do(t, "GET", "/v1/holds/"+h.ID, w.admin, nil), 200); got.Status != "held" {
		t.Fatalf("hold after refused requests: %+v", got)
	}
	// And bare has no wallet: every refused POST /wallets left nothing.
	if ws := want[pageJSON[walletJSON]](t, w.do(t, "GET", "/v1/customers/"+bare+"/wallets", w.admin, nil), 200); len(ws.Data) != 0 {
		t.Fatalf("refused POST /wallets created %+v", ws.Data)
	}
}

// TestWalletBodyTooLarge needs a real socket: fasthttp refuses the body
// while reading the request, which app.Test reports as its own error.
func TestWalletBodyTooLarge(t *testing.T) {
	w := newWalletEnv(t, func(c *api.Config) { c.BodyLimit = 1024 })
	f := w.newWallet(t, nil)
	w.grant(t, f.wallet, map[string]any{"amount": "100", "kind": "paid"})
	before := w.money(t, f.wallet)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- w.app.Listener(ln) }()
	t.Cleanup(func() {
		_ = w.app.Shutdown()
		<-served
	})
	body := `{"amount":"1","description":"` + strings.Repeat("x", 2048) + `"}`
	req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/v1/wallets/"+f.wallet+"/debits", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+w.admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	wantProblem(t, response{resp.StatusCode, resp.Header, b}, 413, problem.PayloadTooLarge)
	if after := w.money(t, f.wallet); after != before {
		t.Fatalf("an oversized request moved money:\n%s\n%s", before, after)
	}
}

// Portal tokens are minted only for customers that exist.
func TestPortalTokenNeedsCustomer(t *testing.T) {
	e := newWalletEnv(t, nil)
	wantProblem(t, e.do(t, "POST", "/v1/customers/nobody-here/portal-tokens", e.admin, nil), 404, problem.NotFound)
	if r := e.do(t, "POST", "/v1/customers", e.admin, map[string]any{"id": "somebody"}); r.status != 201 {
		t.Fatalf("create customer: %d %s", r.status, r.body)
	}
	if r := e.do(t, "POST", "/v1/customers/somebody/portal-tokens", e.admin, nil); r.status != 201 {
		t.Fatalf("portal token for an existing customer: %d %s", r.status, r.body)
	}
}

// A portal key minted through /v1/api-keys obeys the portal-token rules:
// its customer must exist, and it expires after an hour unless told
// otherwise (30 days at most).
func TestPortalKeyThroughAPIKeys(t *testing.T) {
	e := newWalletEnv(t, nil)
	wantProblem(t, e.do(t, "POST", "/v1/api-keys", e.admin, map[string]any{"scope": "portal", "customer_id": "ghost"}), 422, problem.Validation)
	if r := e.do(t, "POST", "/v1/customers", e.admin, map[string]any{"id": "real-portal"}); r.status != 201 {
		t.Fatalf("create customer: %d %s", r.status, r.body)
	}
	r := e.do(t, "POST", "/v1/api-keys", e.admin, map[string]any{"scope": "portal", "customer_id": "real-portal"})
	if r.status != 201 || !strings.Contains(string(r.body), `"expires_at":"`) {
		t.Fatalf("portal key: %d %s (want an expiry)", r.status, r.body)
	}
	wantProblem(t, e.do(t, "POST", "/v1/api-keys", e.admin, map[string]any{"scope": "portal", "customer_id": "real-portal",
		"expires_in_seconds": 31 * 24 * 3600}), 422, problem.Validation)
}

// An ingest key may be bound to one customer, which must exist; the key
// and its listing carry the customer, and so does the caller the events
// handler sees.
func TestIngestKeyBoundToCustomer(t *testing.T) {
	e := newWalletEnv(t, func(c *api.Config) {
		c.Routes = append(c.Routes, api.POST("/may-ingest", func(c *fiber.Ctx) error {
			caller, _ := auth.From(c)
			return c.SendString(strconv.FormatBool(caller.MayIngestFor(c.Query("customer"))))
		}).Allow(apikey.Ingest))
	})
	p := wantProblem(t, e.do(t, "POST", "/v1/api-keys", e.admin, map[string]any{"scope": "ingest", "customer_id": "ghost-ingest"}),
		422, problem.Validation)
	if errs, _ := p["errors"].([]any); len(errs) != 1 || errs[0].(map[string]any)["field"] != "customer_id" {
		t.Fatalf("problem %v, want one error on customer_id", p)
	}
	if r := e.do(t, "POST", "/v1/customers", e.admin, map[string]any{"id": "bound-ingest"}); r.status != 201 {
		t.Fatalf("create customer: %d %s", r.status, r.body)
	}
	r := e.do(t, "POST", "/v1/api-keys", e.admin, map[string]any{"scope": "ingest", "customer_id": "bound-ingest"})
	if r.status != 201 {
		t.Fatalf("bound ingest key: %d %s", r.status, r.body)
	}
	created := r.json(t)
	if created["scope"] != "ingest" || created["customer_id"] != "bound-ingest" || created["expires_at"] != nil {
		t.Fatalf("created %v: want an ingest key of bound-ingest that does not expire", created)
	}
	listed := want[pageJSON[map[string]any]](t, e.do(t, "GET", "/v1/api-keys?scope=ingest&limit=500", e.admin, nil), 200)
	found := false
	for _, k := range listed.Data {
		if k["id"] == created["id"] {
			found = k["customer_id"] == "bound-ingest"
		}
	}
	if !found {
		t.Fatalf("the listing does not show the key with its customer: %v", listed.Data)
	}
	// Through the middleware, as POST /v1/events sees it.
	for _, tc := range []struct {
		key, customer string
		want          bool
	}{
		{created["key"].(string), "bound-ingest", true},
		{created["key"].(string), "someone-else", false},
		{e.admin, "someone-else", true},
	} {
		r := e.do(t, "POST", "/v1/may-ingest?customer="+tc.customer, tc.key, nil)
		if r.status != 200 || string(r.body) != strconv.FormatBool(tc.want) {
			t.Errorf("may ingest for %s: %d %s, want %v", tc.customer, r.status, r.body, tc.want)
		}
	}
}
