package api_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/creditledger/creditledger/api/problem"
)

// TestLenientJSONIsRefused: every spelling of a body that one JSON reader
// could read differently from another is refused before anything is posted.
func TestLenientJSONIsRefused(t *testing.T) {
	w := newWalletEnv(t, nil)
	f := w.newWallet(t, nil)
	w.grant(t, f.wallet, map[string]any{"amount": "100", "kind": "paid"})
	debits := "/v1/wallets/" + f.wallet + "/debits"
	for _, tc := range []struct {
		name   string
		ctype  string
		body   string
		status int
		code   problem.Code
		field  string
	}{
		{"case variant of a key", "application/json", `{"amount":"1","Amount":"2"}`, 422, problem.Validation, "Amount"},
		{"field in another case", "application/json", `{"AMOUNT":"3"}`, 422, problem.Validation, "AMOUNT"},
		{"duplicate key", "application/json", `{"amount":"1","amount":"2"}`, 422, problem.Validation, "amount"},
		{"escaped duplicate key", "application/json", `{"amount":"1","\u0061mount":"2"}`, 422, problem.Validation, "amount"},
		{"long s folds to s", "application/json", `{"amount":"1","de\u017Fcription":"x"}`, 422, problem.Validation, "de\u017Fcription"},
		{"duplicate key in metadata", "application/json", `{"amount":"1","metadata":{"a":1,"a":2}}`, 422, problem.Validation, "metadata.a"},
		{"text/plain", "text/plain", `{"amount":"1"}`, 415, problem.UnsupportedMediaType, ""},
		{"form", "application/x-www-form-urlencoded", `{"amount":"1"}`, 415, problem.UnsupportedMediaType, ""},
		{"no content type", "", `{"amount":"1"}`, 415, problem.UnsupportedMediaType, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.money(t, f.wallet)
			req := httpRequest(t, "POST", debits, w.admin, tc.ctype, tc.body)
			p := wantProblem(t, w.exec(t, req), tc.status, tc.code)
			if tc.field != "" {
				wantField(t, p, tc.field)
			}
			if after := w.money(t, f.wallet); after != before {
				t.Fatalf("refused request moved money:\n%s\n%s", before, after)
			}
		})
	}
}

// TestNULTextIsRefused: a NUL in a debit's description never reaches
// PostgreSQL, which would refuse the whole batch the debit was posted in
// (every other operation committed with it failing too): it is a 422
// naming the field, and nothing is posted. So are the other texts
// PostgreSQL cannot store, in the other bodies that carry text.
func TestNULTextIsRefused(t *testing.T) {
	w := newWalletEnv(t, nil)
	f := w.newWallet(t, nil)
	w.grant(t, f.wallet, map[string]any{"amount": "100", "kind": "paid"})
	W := "/v1/wallets/" + f.wallet
	for _, tc := range []struct {
		name, path, body, field string
	}{
		{"debit description with NUL", W + "/debits", `{"amount":"1","description":"a\u0000b"}`, "description"},
		{"debit description not UTF-8", W + "/debits", "{\"amount\":\"1\",\"description\":\"a\xffb\"}", "description"},
		{"debit metadata with NUL", W + "/debits", `{"amount":"1","metadata":{"note":"\u0000"}}`, "metadata"},
		{"grant description with NUL", W + "/grants", `{"amount":"1","kind":"paid","description":"\u0000"}`, "description"},
		{"hold metadata with a lone surrogate", W + "/holds", `{"amount":"1","metadata":{"a":"\ud800"}}`, "metadata.a"},
		{"hold metadata with a number NUMERIC cannot hold", W + "/holds", `{"amount":"1","metadata":{"a":0e-20000}}`, "metadata"},
		{"customer name with NUL", "/v1/customers", `{"name":"Acme\u0000"}`, "name"},
		{"customer id with NUL", "/v1/customers", `{"id":"a\u0000"}`, "id"},
		{"api key name with NUL", "/v1/api-keys", `{"scope":"read","name":"ci\u0000"}`, "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.money(t, f.wallet)
			r := w.do(t, "POST", tc.path, w.admin, tc.body)
			wantField(t, wantProblem(t, r, 422, problem.Validation), tc.field)
			if after := w.money(t, f.wallet); after != before {
				t.Fatalf("refused request moved money:\n%s\n%s", before, after)
			}
		})
	}
}

// httpRequest is a request with exactly the Content-Type given ("" for none).
func httpRequest(t *testing.T, method, path, key, ctype, body string) *http.Request {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return req
}

func (e *env) exec(t *testing.T, req *http.Request) response {
	t.Helper()
	resp, err := e.app.Test(req, 5000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}
