package api_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// Invoice numbers, paying and voiding, the lists' filters, the printable
// invoice and the upcoming invoice, each answer checked against the
// document; with the portal and read boundaries.
func TestOpenAPIInvoiceLife(t *testing.T) {
	e := newWalletEnv(t, nil)
	cf := &conformer{t: t, e: e, doc: loadOpenAPI(t), seen: map[string]bool{}}
	do := cf.do
	id := func(m map[string]any) string { return m["id"].(string) }

	customer := "life-" + uuid.NewString()[:8]
	do(oaCall{method: "POST", path: "/v1/customers", body: map[string]any{"id": customer, "name": "Life & <Sons>"}}, 201)
	wid := id(do(oaCall{method: "POST", path: "/v1/wallets", body: map[string]any{
		"customer_id": customer, "asset": "USD", "overage_policy": "allow"}}, 201))

	// The upcoming invoice, then the close it foretold.
	do(oaCall{method: "POST", path: "/v1/wallets/{id}/debits", id: wid, body: map[string]any{"amount": "12.345"}}, 201)
	up := do(oaCall{method: "GET", path: "/v1/customers/{id}/upcoming-invoice", id: customer}, 200)
	ups := up["data"].([]any)
	if len(ups) != 1 {
		t.Fatalf("upcoming %v", up)
	}
	preview := ups[0].(map[string]any)
	if preview["status"] != "upcoming" || preview["number"] != nil || preview["total"] != "12.34" {
		t.Fatalf("upcoming invoice %v", preview)
	}
	do(oaCall{method: "GET", path: "/v1/customers/{id}/upcoming-invoice", id: "nobody-" + customer}, 404)
	if list := do(oaCall{method: "GET", path: "/v1/invoices", query: "customer_id=" + customer}, 200); len(list["data"].([]any)) != 0 {
		t.Fatalf("the preview stored an invoice: %v", list)
	}
	first := do(oaCall{method: "POST", path: "/v1/wallets/{id}/close-cycle", id: wid}, 201)
	prefix := strings.ToUpper(strings.ReplaceAll(customer, "-", ""))
	if first["number"] != prefix+"-0001" || first["status"] != "issued" || first["total"] != preview["total"] || first["subscription_id"] != nil {
		t.Fatalf("invoice %v", first)
	}
	line := first["lines"].([]any)[0].(map[string]any)
	if line["type"] != "debits" || line["kind"] != "debits" {
		t.Fatalf("line %v", line)
	}

	// Paid, once.
	path := "/v1/invoices/{id}/mark-paid"
	paid := do(oaCall{method: "POST", path: path, id: id(first), body: map[string]any{"reference": "wire-1"}}, 200)
	if paid["status"] != "paid" || paid["paid_at"] == nil || paid["payment_reference"] != "wire-1" || paid["number"] != first["number"] {
		t.Fatalf("paid %v", paid)
	}
	again := do(oaCall{method: "POST", path: path, id: id(first), header: idem("life-" + customer)}, 200)
	if again["paid_at"] != paid["paid_at"] {
		t.Fatalf("again %v, first %v", again, paid)
	}
	do(oaCall{method: "POST", path: "/v1/invoices/{id}/void", id: id(first)}, 409)
	do(oaCall{method: "POST", path: path, id: uuid.NewString()}, 404)
	do(oaCall{method: "POST", path: path, id: "not-a-uuid"}, 404)
	do(oaCall{method: "POST", path: path, id: id(first), body: map[string]any{"reference": 7}}, 422)
	do(oaCall{method: "POST", path: path, id: id(first), body: map[string]any{"amount": "1"}}, 422)

	// Closing again in the cycle replays the numbered invoice.
	if second := do(oaCall{method: "POST", path: "/v1/wallets/{id}/close-cycle", id: wid}, 201); second["id"] != first["id"] || second["number"] != first["number"] {
		t.Fatalf("a second close in one cycle answered %v", second)
	}

	// Another customer's invoice is voided, once; then cannot be paid.
	other := "life2-" + uuid.NewString()[:8]
	do(oaCall{method: "POST", path: "/v1/customers", body: map[string]any{"id": other}}, 201)
	owid := id(do(oaCall{method: "POST", path: "/v1/wallets", body: map[string]any{"customer_id": other, "asset": "USD", "overage_policy": "allow"}}, 201))
	do(oaCall{method: "POST", path: "/v1/wallets/{id}/debits", id: owid, body: map[string]any{"amount": "3"}}, 201)
	oinv := do(oaCall{method: "POST", path: "/v1/wallets/{id}/close-cycle", id: owid}, 201)
	void := do(oaCall{method: "POST", path: "/v1/invoices/{id}/void", id: id(oinv), body: map[string]any{"reason": "duplicate"}}, 200)
	if void["status"] != "void" || void["voided_at"] == nil || void["void_reason"] != "duplicate" {
		t.Fatalf("void %v", void)
	}
	do(oaCall{method: "POST", path: "/v1/invoices/{id}/void", id: id(oinv)}, 200)
	do(oaCall{method: "POST", path: path, id: id(oinv)}, 409)

	// Lists: every customer's, or filtered.
	all := do(oaCall{method: "GET", path: "/v1/invoices", query: "limit=500"}, 200)
	found := 0
	for _, v := range all["data"].([]any) {
		if m := v.(map[string]any); m["id"] == first["id"] || m["id"] == oinv["id"] {
			found++
		}
	}
	if found != 2 {
		t.Fatalf("every customer's list has %d of the two invoices", found)
	}
	count := func(query string) int {
		return len(do(oaCall{method: "GET", path: "/v1/invoices", query: query}, 200)["data"].([]any))
	}
	if n := count("status=paid&customer_id=" + customer); n != 1 {
		t.Fatalf("%d paid", n)
	}
	if n := count("status=void&customer_id=" + customer); n != 0 {
		t.Fatalf("%d void", n)
	}
	start := url.QueryEscape(first["period_start"].(string))
	if n := count("customer_id=" + customer + "&from=" + start); n != 1 {
		t.Fatalf("%d from the period's start", n)
	}
	if n := count("customer_id=" + customer + "&to=" + start); n != 0 {
		t.Fatalf("%d before the period's start", n)
	}
	do(oaCall{method: "GET", path: "/v1/invoices", query: "status=open"}, 422)
	do(oaCall{method: "GET", path: "/v1/invoices", query: "from=yesterday"}, 422)
	do(oaCall{method: "GET", path: "/v1/invoices", query: "from=" + start + "&to=" + start}, 422)
	do(oaCall{method: "GET", path: "/v1/invoices", query: "customer_id=nobody-" + customer}, 404)

	// The printable invoice.
	for _, c := range []oaCall{
		{method: "GET", path: "/v1/invoices/{id}", id: id(first), header: map[string]string{"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}},
		{method: "GET", path: "/v1/invoices/{id}", id: id(first), query: "format=html"},
	} {
		r := e.doH(t, c.method, strings.Replace(c.path, "{id}", c.id, 1)+"?"+c.query, e.admin, c.header, nil)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Fatalf("HTML invoice: %d %s", r.status, r.header.Get("Content-Type"))
		}
		page := string(r.body)
		for _, want := range []string{prefix + "-0001", customer, "Life &amp; &lt;Sons&gt;", "CreditLedger", "paid", "debits",
			"Debits and captures not covered by credits", "12.345", "12.34 USD", "0.005", "Subtotal", "Carried out", "wire-1"} {
			if !strings.Contains(page, want) {
				t.Errorf("the HTML invoice lacks %q", want)
			}
		}
		if strings.Contains(page, "<Sons>") {
			t.Error("the customer's name is not escaped")
		}
		do(c, 200)
	}
	if j := do(oaCall{method: "GET", path: "/v1/invoices/{id}", id: id(first), query: "format=json",
		header: map[string]string{"Accept": "text/html"}}, 200); j["id"] != first["id"] {
		t.Fatalf("format=json answered %v", j)
	}
	do(oaCall{method: "GET", path: "/v1/invoices/{id}", id: id(first), query: "format=pdf"}, 422)

	// Boundaries: a portal token reads its own (list without customer_id
	// included), not another's; read keys cannot pay or void.
	portal := do(oaCall{method: "POST", path: "/v1/customers/{id}/portal-tokens", id: customer}, 201)["key"].(string)
	own := do(oaCall{method: "GET", path: "/v1/invoices", key: portal}, 200)["data"].([]any)
	if len(own) != 1 || own[0].(map[string]any)["id"] != first["id"] {
		t.Fatalf("the portal's list %v", own)
	}
	do(oaCall{method: "GET", path: "/v1/invoices", query: "customer_id=" + other, key: portal}, 404)
	do(oaCall{method: "GET", path: "/v1/invoices/{id}", id: id(first), query: "format=html", key: portal}, 200)
	do(oaCall{method: "GET", path: "/v1/invoices/{id}", id: id(oinv), query: "format=html", key: portal}, 404)
	do(oaCall{method: "GET", path: "/v1/customers/{id}/upcoming-invoice", id: customer, key: portal}, 200)
	do(oaCall{method: "GET", path: "/v1/customers/{id}/upcoming-invoice", id: other, key: portal}, 404)
	do(oaCall{method: "POST", path: path, id: id(first), key: portal}, 403)
	readKey := do(oaCall{method: "POST", path: "/v1/api-keys", body: map[string]any{"scope": "read", "name": "r"}}, 201)["key"].(string)
	do(oaCall{method: "POST", path: "/v1/invoices/{id}/void", id: id(first), key: readKey}, 403)
	do(oaCall{method: "GET", path: "/v1/customers/{id}/upcoming-invoice", id: customer, key: readKey}, 200)
}
