package api_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Plans and subscriptions over HTTP, the way the README walks through
// them: credits worth money, a hybrid plan, a subscription, usage, and the
// period's invoice in money — every answer checked against the document.
func TestPlansAndSubscriptionsResponses(t *testing.T) {
	e := newWalletEnv(t, nil)
	cf := &conformer{t: t, e: e, doc: loadOpenAPI(t), seen: map[string]bool{}}
	do := cf.do
	credits := "CR" + strings.ToUpper(uuid.NewString()[:8])
	do(oaCall{method: "PUT", path: "/v1/assets/{code}", id: credits,
		body: map[string]any{"kind": "credits", "currency": "USD", "unit_price": "0.01"}}, 200)
	meter := do(oaCall{method: "POST", path: "/v1/meters", body: map[string]any{
		"code": uniq("tokens"), "event_name": uniq("llm"), "aggregation": "sum", "property": "tokens"}}, 201)
	price := func(unit string) map[string]any {
		return map[string]any{"meter_code": meter["code"], "asset": credits, "model": "per_unit", "unit_price": unit}
	}
	code := strings.ToLower(uniq("team"))
	planBody := map[string]any{"code": code, "name": "Team", "currency": "USD", "base_fee": "20", "minimum_commitment": "50",
		"included_credits": []any{map[string]any{"asset": credits, "amount": "1000"}}, "prices": []any{price("1")}}
	plan := do(oaCall{method: "POST", path: "/v1/plans", body: planBody}, 201)
	if plan["version"] != float64(1) || plan["base_fee"] != "20" || len(plan["prices"].([]any)) != 1 {
		t.Fatalf("plan %v", plan)
	}
	do(oaCall{method: "POST", path: "/v1/plans", body: planBody}, 409)
	// With an Idempotency-Key, a retry answers what the first made.
	keyed := map[string]any{"code": strings.ToLower(uniq("keyed")), "currency": "USD", "base_fee": "1"}
	pk := map[string]string{"Idempotency-Key": uuid.NewString()}
	first := do(oaCall{method: "POST", path: "/v1/plans", header: pk, body: keyed}, 201)
	if r := e.doH(t, "POST", "/v1/plans", e.admin, pk, keyed); r.status != 201 || r.header.Get("Idempotent-Replayed") != "true" ||
		!strings.Contains(string(r.body), first["code"].(string)) {
		t.Fatalf("plan replay: %d %s", r.status, r.body)
	}
	keyed["base_fee"] = "2"
	do(oaCall{method: "POST", path: "/v1/plans", header: pk, body: keyed}, 409)
	vk := map[string]string{"Idempotency-Key": uuid.NewString()}
	do(oaCall{method: "POST", path: "/v1/plans/{code}/versions", id: first["code"].(string), header: vk, body: map[string]any{"base_fee": "3"}}, 201)
	if again := do(oaCall{method: "POST", path: "/v1/plans/{code}/versions", id: first["code"].(string), header: vk,
		body: map[string]any{"base_fee": "3"}}, 201); again["version"] != float64(2) {
		t.Fatalf("a retried version made version %v, want 2 again", again["version"])
	}
	prk := map[string]string{"Idempotency-Key": uuid.NewString()}
	p1 := do(oaCall{method: "POST", path: "/v1/prices", header: prk, body: price("1")}, 201)
	if p2 := do(oaCall{method: "POST", path: "/v1/prices", header: prk, body: price("1")}, 201); p2["id"] != p1["id"] {
		t.Fatalf("a retried price made another: %v then %v", p1["id"], p2["id"])
	}
	do(oaCall{method: "POST", path: "/v1/prices", header: prk, body: price("2")}, 409)
	field := func(p map[string]any) string {
		errs, _ := p["errors"].([]any)
		if len(errs) == 0 {
			return ""
		}
		return errs[0].(map[string]any)["field"].(string)
	}
	for _, c := range []struct {
		edit  func(map[string]any)
		field string
	}{
		{func(b map[string]any) { b["base_fee"] = "-1" }, "base_fee"},
		{func(b map[string]any) { b["currency"] = "EUR" }, "included_credits[0].asset"},
		{func(b map[string]any) {
			b["prices"] = []any{map[string]any{"meter_code": "nope", "asset": credits, "model": "per_unit", "unit_price": "1"}}
		}, "prices[0].meter_code"},
		{func(b map[string]any) {
			b["prices"] = []any{map[string]any{"meter_code": meter["code"], "asset": credits, "model": "per_unit"}}
		}, "prices[0].unit_price"},
	} {
		b := map[string]any{}
		for k, v := range planBody {
			b[k] = v
		}
		b["code"] = strings.ToLower(uniq("bad"))
		c.edit(b)
		if p := do(oaCall{method: "POST", path: "/v1/plans", body: b}, 422); field(p) != c.field {
			t.Errorf("%v: %v, want field %s", b, p, c.field)
		}
	}
	do(oaCall{method: "GET", path: "/v1/plans"}, 200)
	do(oaCall{method: "GET", path: "/v1/plans/{code}", id: code}, 200)
	do(oaCall{method: "GET", path: "/v1/plans/{code}", id: code, query: "version=1"}, 200)
	do(oaCall{method: "GET", path: "/v1/plans/{code}", id: code, query: "version=zero"}, 422)
	do(oaCall{method: "GET", path: "/v1/plans/{code}", id: "no-such-plan"}, 404)
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	v2 := do(oaCall{method: "POST", path: "/v1/plans/{code}/versions", id: code, body: map[string]any{
		"effective_at": later, "base_fee": "25", "prices": []any{price("0.9")}}}, 201)
	if v2["version"] != float64(2) || len(v2["versions"].([]any)) != 2 {
		t.Fatalf("version 2: %v", v2)
	}
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	if p := do(oaCall{method: "POST", path: "/v1/plans/{code}/versions", id: code, body: map[string]any{"effective_at": past}}, 422); field(p) != "effective_at" {
		t.Errorf("a version in the past: %v", p)
	}
	do(oaCall{method: "POST", path: "/v1/plans/{code}/versions", id: "no-such-plan", body: map[string]any{}}, 404)

	customer := "oa-sub-" + uuid.NewString()
	do(oaCall{method: "POST", path: "/v1/customers", body: map[string]any{"id": customer}}, 201)
	key := map[string]string{"Idempotency-Key": uuid.NewString()}
	subBody := map[string]any{"customer_id": customer, "plan_code": code}
	sub := do(oaCall{method: "POST", path: "/v1/subscriptions", header: key, body: subBody}, 201)
	if sub["status"] != "active" || len(sub["wallets"].([]any)) != 1 {
		t.Fatalf("subscription %v", sub)
	}
	if r := e.doH(t, "POST", "/v1/subscriptions", e.admin, key, subBody); r.status != 201 || r.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %s", r.status, r.body)
	}
	do(oaCall{method: "POST", path: "/v1/subscriptions", body: subBody}, 409)
	if p := do(oaCall{method: "POST", path: "/v1/subscriptions", body: map[string]any{"customer_id": customer, "plan_code": "nope"}}, 422); field(p) != "plan_code" {
		t.Errorf("unknown plan: %v", p)
	}
	id := sub["id"].(string)
	do(oaCall{method: "GET", path: "/v1/subscriptions/{id}", id: id}, 200)
	do(oaCall{method: "GET", path: "/v1/subscriptions/{id}", id: uuid.NewString()}, 404)
	do(oaCall{method: "GET", path: "/v1/subscriptions", query: "customer_id=" + url.QueryEscape(customer)}, 200)
	do(oaCall{method: "GET", path: "/v1/subscriptions"}, 422)

	ev := map[string]any{"event_id": uuid.NewString(), "customer_id": customer, "event_name": meter["event_name"],
		"properties": map[string]any{"tokens": 1500}}
	if r := e.do(t, "POST", "/v1/events", e.admin, map[string]any{"events": []any{ev}}); r.status != 202 || !strings.Contains(string(r.body), `"accepted":1`) {
		t.Fatalf("ingest: %d %s", r.status, r.body)
	}
	inv := do(oaCall{method: "POST", path: "/v1/subscriptions/{id}/close-period", id: id}, 201)
	if inv["total"] != "50" || inv["currency"] != "USD" || inv["subscription_id"] != id || len(inv["lines"].([]any)) != 3 {
		t.Fatalf("invoice %v", inv)
	}
	if again := do(oaCall{method: "POST", path: "/v1/subscriptions/{id}/close-period", id: id}, 201); again["id"] != inv["id"] {
		t.Fatalf("closing again issued another invoice: %v", again)
	}
	other := do(oaCall{method: "POST", path: "/v1/plans", body: map[string]any{"code": strings.ToLower(uniq("pro")), "currency": "USD",
		"base_fee": "99"}}, 201)
	changed := do(oaCall{method: "POST", path: "/v1/subscriptions/{id}/change-plan", id: id, body: map[string]any{"plan_code": other["code"]}}, 200)
	if changed["next_plan_code"] != other["code"] {
		t.Fatalf("change at the period's end: %v", changed)
	}
	do(oaCall{method: "POST", path: "/v1/subscriptions/{id}/change-plan", id: id, body: map[string]any{"plan_code": other["code"], "at": "someday"}}, 422)
	canceled := do(oaCall{method: "POST", path: "/v1/subscriptions/{id}/cancel", id: id, body: map[string]any{}}, 200)
	if canceled["cancel_at_period_end"] != true || canceled["status"] != "active" {
		t.Fatalf("cancel at the period's end: %v", canceled)
	}
	ended := do(oaCall{method: "POST", path: "/v1/subscriptions/{id}/cancel", id: id, body: map[string]any{"at_period_end": false}}, 200)
	if ended["status"] != "canceled" {
		t.Fatalf("cancel now: %v", ended)
	}
	do(oaCall{method: "POST", path: "/v1/subscriptions/{id}/cancel", id: id, body: map[string]any{}}, 409)
	do(oaCall{method: "POST", path: "/v1/subscriptions/{id}/close-period", id: id}, 409)
	archived := do(oaCall{method: "POST", path: "/v1/plans/{code}/archive", id: code}, 200)
	if archived["archived_at"] == nil {
		t.Fatalf("archive: %v", archived)
	}
	do(oaCall{method: "POST", path: "/v1/plans/{code}/archive", id: "no-such-plan"}, 404)
}
