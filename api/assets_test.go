package api_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"
)

// The asset routes and what a priced asset changes on the wire — a
// grant's cost basis, a top-up's price, an invoice in money with credits
// and money side by side — each answer checked against the document.
func TestAssetsAndMoneyInvoiceResponses(t *testing.T) {
	e := newWalletEnv(t, nil)
	cf := &conformer{t: t, e: e, doc: loadOpenAPI(t), seen: map[string]bool{}}
	do := cf.do
	code := "CR" + strings.ToUpper(uuid.NewString()[:8])

	a := do(oaCall{method: "PUT", path: "/v1/assets/{code}", id: code,
		body: map[string]any{"kind": "credits", "currency": "USD", "unit_price": "0.01", "name": "Gems"}}, 200)
	if a["code"] != code || a["kind"] != "credits" || a["currency"] != "USD" || a["unit_price"] != "0.01" || a["minor_units"] != nil {
		t.Fatalf("asset %v", a)
	}
	field := func(p map[string]any) string {
		errs, _ := p["errors"].([]any)
		if len(errs) == 0 {
			return ""
		}
		return errs[0].(map[string]any)["field"].(string)
	}
	for _, c := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"kind": "credits", "currency": "USD", "unit_price": "0"}, "unit_price"},
		{map[string]any{"kind": "credits", "currency": "usd", "unit_price": "1"}, "currency"},
		{map[string]any{"kind": "credits", "currency": "USD", "unit_price": "-1"}, "unit_price"},
	} {
		if p := do(oaCall{method: "PUT", path: "/v1/assets/{code}", id: code, body: c.body}, 422); field(p) != c.field {
			t.Errorf("%v: %v, want field %s", c.body, p, c.field)
		}
	}
	if p := do(oaCall{method: "PUT", path: "/v1/assets/{code}", id: "USD", body: map[string]any{"kind": "currency", "unit_price": "1"}}, 422); field(p) != "unit_price" {
		t.Errorf("unit price on a currency: %v", p)
	}
	do(oaCall{method: "PUT", path: "/v1/assets/{code}", id: code, body: map[string]any{"kind": "currency"}}, 422) // not a currency code
	usd := do(oaCall{method: "PUT", path: "/v1/assets/{code}", id: "USD", body: map[string]any{"kind": "currency"}}, 200)
	if usd["minor_units"] != float64(2) {
		t.Fatalf("USD %v", usd)
	}
	do(oaCall{method: "PUT", path: "/v1/assets/{code}", id: "USD", body: map[string]any{"kind": "credits"}}, 409)
	do(oaCall{method: "GET", path: "/v1/assets/{code}", id: code}, 200)
	do(oaCall{method: "GET", path: "/v1/assets/{code}", id: "NOPE" + code}, 404)
	if list := do(oaCall{method: "GET", path: "/v1/assets"}, 200); len(list["data"].([]any)) < 2 {
		t.Fatalf("assets %v", list)
	}

	customer := "oa-money-" + uuid.NewString()
	do(oaCall{method: "POST", path: "/v1/customers", body: map[string]any{"id": customer}}, 201)
	w := do(oaCall{method: "POST", path: "/v1/wallets", body: map[string]any{"customer_id": customer, "asset": code, "overage_policy": "allow"}}, 201)
	wid := w["id"].(string)
	g := do(oaCall{method: "POST", path: "/v1/wallets/{id}/grants", id: wid, body: map[string]any{"amount": "1000", "kind": "paid"}}, 201)
	if g["cost_basis"] != "10" {
		t.Fatalf("grant cost basis %v", g["cost_basis"])
	}
	do(oaCall{method: "PUT", path: "/v1/wallets/{id}/auto-topup", id: wid, body: map[string]any{"threshold": "10", "amount": "250"}}, 200)
	do(oaCall{method: "POST", path: "/v1/wallets/{id}/debits", id: wid, body: map[string]any{"amount": "1500"}}, 201)
	ts := do(oaCall{method: "GET", path: "/v1/wallets/{id}/topups", id: wid}, 200)
	data := ts["data"].([]any)
	if len(data) != 1 {
		t.Fatalf("top-ups %v", ts)
	}
	tp := data[0].(map[string]any)
	// Available is 0 (the rest is overage): one top-up of 250 credits, 2.50 USD.
	if tp["amount"] != "250" || tp["price"] != "2.5" || tp["currency"] != "USD" {
		t.Fatalf("top-up %v", tp)
	}
	inv := do(oaCall{method: "POST", path: "/v1/wallets/{id}/close-cycle", id: wid}, 201)
	lines := inv["lines"].([]any)
	if inv["currency"] != "USD" || inv["total"] != "5" || len(lines) != 1 {
		t.Fatalf("invoice %v", inv)
	}
	l := lines[0].(map[string]any)
	if l["kind"] != "debits" || l["credits"] != "500" || l["credit_price"] != "0.01" || l["amount"] != "5" || l["unit_price"] != "5" || l["quantity"] != "1" {
		t.Fatalf("line %v", l)
	}
	// Unpriced credits keep invoices in the asset, lines without credits.
	plain := "CR" + strings.ToUpper(uuid.NewString()[:8])
	do(oaCall{method: "PUT", path: "/v1/assets/{code}", id: plain, body: map[string]any{"kind": "credits"}}, 200)
	w2 := do(oaCall{method: "POST", path: "/v1/wallets", body: map[string]any{"customer_id": customer, "asset": plain, "overage_policy": "allow"}}, 201)
	do(oaCall{method: "POST", path: "/v1/wallets/{id}/debits", id: w2["id"].(string), body: map[string]any{"amount": "3"}}, 201)
	inv2 := do(oaCall{method: "POST", path: "/v1/wallets/{id}/close-cycle", id: w2["id"].(string)}, 201)
	l2 := inv2["lines"].([]any)[0].(map[string]any)
	if inv2["currency"] != plain || l2["credits"] != nil || l2["credit_price"] != nil {
		t.Fatalf("unpriced invoice %v", inv2)
	}
}
