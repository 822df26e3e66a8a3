package api_test

import (
	"testing"

	"github.com/creditledger/creditledger/api/problem"
)

// A body is JSON only when it says so; a body-less POST needs no label.
func TestRequireJSON(t *testing.T) {
	e := newEnv(t, nil)
	key := `{"scope":"read","name":"media type test"}`
	for _, tc := range []struct {
		name   string
		ctype  string
		body   string
		noKey  bool
		status int
	}{
		{"application/json", "application/json", key, false, 201},
		{"with charset", "application/json; charset=utf-8", key, false, 201},
		{"in another case", "Application/JSON; Charset=UTF-8", key, false, 201},
		{"quoted charset", `application/json;charset="utf-8"`, key, false, 201},
		{"other charset", "application/json; charset=latin1", key, false, 415},
		{"text/plain", "text/plain", key, false, 415},
		{"form", "application/x-www-form-urlencoded", key, false, 415},
		{"no Content-Type", "", key, false, 415},
		{"a lookalike", "application/jsonp", key, false, 415},
		{"another JSON type", "application/problem+json", key, false, 415},
		{"malformed header", "application/json; charset", key, false, 415},
		{"empty body, any label", "text/plain", "", false, 422},      // scope is required: the handler ran
		{"blank body, any label", "text/plain", " \r\n", false, 422}, // as DecodeJSON reads it: empty
		{"no key comes first", "text/plain", key, true, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := e.admin
			if tc.noKey {
				k = ""
			}
			r := e.exec(t, httpRequest(t, "POST", "/v1/api-keys", k, tc.ctype, tc.body))
			switch tc.status {
			case 201:
				if r.status != 201 {
					t.Fatalf("status %d, want 201\n%s", r.status, r.body)
				}
			case 415:
				wantProblem(t, r, 415, problem.UnsupportedMediaType)
			case 422:
				wantField(t, wantProblem(t, r, 422, problem.Validation), "scope")
			case 401:
				wantProblem(t, r, 401, problem.Unauthorized)
			}
		})
	}
}
