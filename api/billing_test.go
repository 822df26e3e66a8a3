package api_test

import (
	"testing"

	"github.com/google/uuid"
)

// The auto top-up, top-up, cycle and invoice operations, each answer
// checked against the document; with the portal and read boundaries.
func TestOpenAPIBillingResponses(t *testing.T) {
	e := newWalletEnv(t, nil)
	cf := &conformer{t: t, e: e, doc: loadOpenAPI(t), seen: map[string]bool{}}
	do := cf.do
	id := func(m map[string]any) string { return m["id"].(string) }

	customer := "bill-" + uuid.NewString()
	do(oaCall{method: "POST", path: "/v1/customers", body: map[string]any{"id": customer}}, 201)
	w := do(oaCall{method: "POST", path: "/v1/wallets", body: map[string]any{
		"customer_id": customer, "asset": "USD", "overage_policy": "allow"}}, 201)
	wid := id(w)
	do(oaCall{method: "POST", path: "/v1/wallets/{id}/grants", id: wid, body: map[string]any{"amount": "100", "kind": "paid"}}, 201)

	const rule = "/v1/wallets/{id}/auto-topup"
	do(oaCall{method: "GET", path: rule, id: wid}, 404) // none yet
	do(oaCall{method: "PUT", path: rule, id: wid, body: map[string]any{"threshold": "50"}}, 422)
	do(oaCall{method: "PUT", path: rule, id: wid, body: map[string]any{"threshold": "50", "amount": "10", "target_balance": "200"}}, 422)
	do(oaCall{method: "PUT", path: rule, id: wid, body: map[string]any{"threshold": "50", "target_balance": "40"}}, 422)
	do(oaCall{method: "PUT", path: rule, id: wid, body: map[string]any{"threshold": 50, "amount": "10"}}, 422)
	do(oaCall{method: "PUT", path: rule, id: uuid.NewString(), body: map[string]any{"threshold": "50", "amount": "10"}}, 404)
	r := do(oaCall{method: "PUT", path: rule, id: wid, body: map[string]any{
		"threshold": "50", "target_balance": "100", "payment": "confirm", "max_per_day": 3}}, 200)
	if r["payment"] != "confirm" || r["max_per_day"].(float64) != 3 {
		t.Fatalf("rule %v", r)
	}
	do(oaCall{method: "GET", path: rule, id: wid}, 200)

	// Below the threshold: one top-up requested.
	do(oaCall{method: "POST", path: "/v1/wallets/{id}/debits", id: wid, body: map[string]any{"amount": "70"}}, 201)
	list := do(oaCall{method: "GET", path: "/v1/wallets/{id}/topups", id: wid}, 200)
	tops := list["data"].([]any)
	if len(tops) != 1 {
		t.Fatalf("top-ups %v", tops)
	}
	tid := id(tops[0].(map[string]any))
	tp := do(oaCall{method: "GET", path: "/v1/topups/{id}", id: tid}, 200)
	if tp["status"] != "requested" || tp["amount"] != "70" {
		t.Fatalf("top-up %v", tp)
	}
	do(oaCall{method: "GET", path: "/v1/topups/{id}", id: uuid.NewString()}, 404)
	do(oaCall{method: "GET", path: "/v1/topups/{id}", id: "not-a-uuid"}, 404)
	do(oaCall{method: "POST", path: "/v1/topups/{id}/confirm", id: tid}, 200)
	do(oaCall{method: "POST", path: "/v1/topups/{id}/confirm", id: tid}, 200) // replayed
	do(oaCall{method: "POST", path: "/v1/topups/{id}/fail", id: tid, body: map[string]any{"reason": "declined"}}, 409)
	do(oaCall{method: "POST", path: "/v1/topups/{id}/fail", id: uuid.NewString()}, 404)

	// Into overage, then the cycle closes once.
	do(oaCall{method: "POST", path: "/v1/wallets/{id}/debits", id: wid, body: map[string]any{"amount": "112.345"}}, 201)
	inv := do(oaCall{method: "POST", path: "/v1/wallets/{id}/close-cycle", id: wid}, 201)
	if inv["total"] != "12.34" || inv["carried_out"] != "0.005" || inv["currency"] != "USD" {
		t.Fatalf("invoice %v", inv)
	}
	again := do(oaCall{method: "POST", path: "/v1/wallets/{id}/close-cycle", id: wid}, 201)
	if again["id"] != inv["id"] {
		t.Fatalf("second close issued %v, first %v", again["id"], inv["id"])
	}
	do(oaCall{method: "POST", path: "/v1/wallets/{id}/close-cycle", id: uuid.NewString()}, 404)
	do(oaCall{method: "GET", path: "/v1/invoices/{id}", id: id(inv)}, 200)
	do(oaCall{method: "GET", path: "/v1/invoices/{id}", id: uuid.NewString()}, 404)
	invs := do(oaCall{method: "GET", path: "/v1/invoices", query: "customer_id=" + customer}, 200)
	if n := len(invs["data"].([]any)); n != 1 {
		t.Fatalf("%d invoices", n)
	}
	do(oaCall{method: "GET", path: "/v1/invoices"}, 200) // every customer's
	// Paged: a page of one has a cursor to the rest; a forged cursor is refused.
	first := do(oaCall{method: "GET", path: "/v1/invoices", query: "limit=1&customer_id=" + customer}, 200)
	if first["next_cursor"] != nil {
		t.Fatalf("one invoice, yet a next page: %v", first)
	}
	do(oaCall{method: "GET", path: "/v1/invoices", query: "cursor=not-ours&customer_id=" + customer}, 422)
	do(oaCall{method: "GET", path: "/v1/wallets/{id}/topups", id: wid, query: "cursor=not-ours"}, 422)

	// The customer's portal token reads its own, not another's; a read key
	// cannot configure or settle.
	portal := do(oaCall{method: "POST", path: "/v1/customers/{id}/portal-tokens", id: customer}, 201)["key"].(string)
	do(oaCall{method: "GET", path: "/v1/invoices/{id}", id: id(inv), key: portal}, 200)
	do(oaCall{method: "GET", path: "/v1/wallets/{id}/auto-topup", id: wid, key: portal}, 200)
	do(oaCall{method: "GET", path: "/v1/invoices", query: "customer_id=someone-else", key: portal}, 404)
	do(oaCall{method: "POST", path: "/v1/wallets/{id}/close-cycle", id: wid, key: portal}, 403)
	readKey := do(oaCall{method: "POST", path: "/v1/api-keys", body: map[string]any{"scope": "read", "name": "r"}}, 201)["key"].(string)
	do(oaCall{method: "GET", path: "/v1/topups/{id}", id: tid, key: readKey}, 200)
	do(oaCall{method: "PUT", path: rule, id: wid, key: readKey, body: map[string]any{"threshold": "1", "amount": "1"}}, 403)
	do(oaCall{method: "POST", path: "/v1/topups/{id}/confirm", id: tid, key: readKey}, 403)
}
