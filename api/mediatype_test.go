package api_test

import (
	"context"
	"testing"

	"github.com/creditledger/creditledger/api/problem"
	"github.com/creditledger/creditledger/apikey"
)

// A body is JSON only when it says so; a body-less POST needs no label; a
// wrong key is said before a wrong label.
func TestRequireJSON(t *testing.T) {
	e := newEnv(t, nil)
	key := `{"scope":"read","name":"media type test"}`
	read, _, err := e.keys.Create(context.Background(), apikey.NewKey{Scope: apikey.Read, Name: "media type test"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		ctype  string
		body   string
		key    string // "" for the admin key, "none" for no key
		status int
	}{
		{"application/json", "application/json", key, "", 201},
		{"with charset", "application/json; charset=utf-8", key, "", 201},
		{"in another case", "Application/JSON; Charset=UTF-8", key, "", 201},
		{"quoted charset", `application/json;charset="utf-8"`, key, "", 201},
		{"other charset", "application/json; charset=latin1", key, "", 415},
		{"text/plain", "text/plain", key, "", 415},
		{"form", "application/x-www-form-urlencoded", key, "", 415},
		{"no Content-Type", "", key, "", 415},
		{"a lookalike", "application/jsonp", key, "", 415},
		{"another JSON type", "application/problem+json", key, "", 415},
		{"malformed header", "application/json; charset", key, "", 415},
		{"empty body, any label", "text/plain", "", "", 422},      // scope is required: the handler ran
		{"blank body, any label", "text/plain", " \r\n", "", 422}, // as DecodeJSON reads it: empty
		{"no key comes first", "text/plain", key, "none", 401},
		{"the scope comes first", "text/plain", key, "read", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := e.admin
			switch tc.key {
			case "none":
				k = ""
			case "read":
				k = read
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
			case 403:
				wantProblem(t, r, 403, problem.Forbidden)
			}
		})
	}
}
