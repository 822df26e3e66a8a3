package api_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/creditledger/creditledger/api"
	"github.com/creditledger/creditledger/api/problem"
	"github.com/creditledger/creditledger/apikey"
)

// Customers and wallets listed and changed over HTTP: the lists are open
// to read keys (not to portal tokens), the changes to admin only; a wallet
// change is idempotent by its key and fields left out stay.
func TestCatalogHTTP(t *testing.T) {
	w := newWalletEnv(t, nil)
	ctx := context.Background()
	f := w.newWallet(t, map[string]any{"overage_policy": "allow", "overage_limit": "5"})
	key := func(scope apikey.Scope, customer string) string {
		k, _, err := w.keys.Create(ctx, apikey.NewKey{Scope: scope, CustomerID: customer, Name: "catalog test", TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	read, portal := key(apikey.Read, ""), key(apikey.Portal, f.customer)
	customers := "/v1/customers?q=" + url.QueryEscape(f.customer)
	wallets := "/v1/wallets?customer_id=" + url.QueryEscape(f.customer)
	W := "/v1/wallets/" + f.wallet

	for _, k := range []string{w.admin, read} {
		cs := want[pageJSON[customerJSON]](t, w.do(t, "GET", customers, k, nil), 200)
		if len(cs.Data) != 1 || cs.Data[0].ID != f.customer || cs.NextCursor != nil {
			t.Fatalf("customers: %+v", cs)
		}
		ws := want[pageJSON[walletJSON]](t, w.do(t, "GET", wallets, k, nil), 200)
		if len(ws.Data) != 1 || ws.Data[0].ID != f.wallet {
			t.Fatalf("wallets: %+v", ws)
		}
	}
	for _, path := range []string{customers, wallets} {
		wantProblem(t, w.do(t, "GET", path, portal, nil), 403, problem.Forbidden)
	}
	for _, path := range []string{W, "/v1/customers/" + f.customer} {
		wantProblem(t, w.do(t, "PATCH", path, read, map[string]any{}), 403, problem.Forbidden)
	}

	// Customers: absent fields stay.
	c := want[customerJSON](t, w.do(t, "PATCH", "/v1/customers/"+f.customer, w.admin,
		map[string]any{"name": "Acme", "metadata": map[string]any{"tier": "gold"}}), 200)
	c = want[customerJSON](t, w.do(t, "PATCH", "/v1/customers/"+f.customer, w.admin, map[string]any{"email": "a@acme.example"}), 200)
	if c.Name != "Acme" || string(c.Metadata) != `{"tier":"gold"}` {
		t.Fatalf("customer after two changes: %+v", c)
	}
	wantField(t, wantProblem(t, w.do(t, "PATCH", "/v1/customers/"+f.customer, w.admin, map[string]any{"nmae": "x"}), 422, problem.Validation), "nmae")

	// Wallets: the limit removed with null, thresholds replaced; the policy
	// stays; a replay answers the same bytes, marked.
	body := map[string]any{"overage_limit": nil, "alert_thresholds": []int{75, 25}}
	r := w.doH(t, "PATCH", W, w.admin, idem("catalog-"+f.wallet), body)
	got := want[walletJSON](t, r, 200)
	if got.OveragePolicy != "allow" || got.OverageLimit != nil || len(got.AlertThresholds) != 2 || got.AlertThresholds[0] != 25 {
		t.Fatalf("wallet after the change: %+v", got)
	}
	again := w.doH(t, "PATCH", W, w.admin, idem("catalog-"+f.wallet), body)
	if again.status != 200 || string(again.body) != string(r.body) || again.header.Get(api.HeaderIdempotentReplayed) != "true" {
		t.Fatalf("replay: %d %s %q", again.status, again.body, again.header.Get(api.HeaderIdempotentReplayed))
	}
	if read := want[walletJSON](t, w.do(t, "GET", W, w.admin, nil), 200); read.OverageLimit != nil || read.AlertThresholds[1] != 75 {
		t.Fatalf("read back: %+v", read)
	}
	wantField(t, wantProblem(t, w.do(t, "PATCH", W, w.admin, map[string]any{"overage_limit": "-1"}), 422, problem.Validation), "overage_limit")
	wantField(t, wantProblem(t, w.do(t, "PATCH", W, w.admin, map[string]any{"alert_thresholds": []int{101}}), 422, problem.Validation), "alert_thresholds")
	wantProblem(t, w.do(t, "GET", "/v1/wallets?customer_id=nobody-"+f.customer, w.admin, nil), 404, problem.NotFound)
}
