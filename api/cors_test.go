package api_test

import (
	"net/http"
	"testing"

	"github.com/creditledger/creditledger/api"
)

// A browser's preflight from a listed origin is answered 204 with what a
// portal token may do; from another origin it gets no CORS header at all
// (and meets the key check), and without LEDGER_CORS_ORIGINS nobody does.
func TestCORS(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.CORSOrigins = []string{"https://app.example.com"} })
	off := newEnv(t, nil)
	preflight := func(origin string) map[string]string {
		return map[string]string{"Origin": origin, "Access-Control-Request-Method": "GET",
			"Access-Control-Request-Headers": "authorization"}
	}
	tests := []struct {
		name       string
		env        *env
		method     string
		header     map[string]string
		status     int
		allowed    string
		withKey    bool
		wantNoCORS bool
	}{
		{"preflight, listed", e, http.MethodOptions, preflight("https://app.example.com"), 204, "https://app.example.com", false, false},
		{"preflight, not listed", e, http.MethodOptions, preflight("https://evil.example"), 401, "", false, true},
		{"preflight, none configured", off, http.MethodOptions, preflight("https://app.example.com"), 401, "", false, true},
		{"GET, listed", e, http.MethodGet, map[string]string{"Origin": "https://app.example.com"}, 200, "https://app.example.com", true, false},
		{"GET, not listed", e, http.MethodGet, map[string]string{"Origin": "https://evil.example"}, 200, "", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := ""
			if tt.withKey {
				key = tt.env.admin
			}
			r := tt.env.doH(t, tt.method, "/v1/whoami", key, tt.header, nil)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d\n%s", r.status, tt.status, r.body)
			}
			if got := r.header.Get("Access-Control-Allow-Origin"); got != tt.allowed {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tt.allowed)
			}
			if tt.wantNoCORS {
				for _, h := range []string{"Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Max-Age"} {
					if v := r.header.Get(h); v != "" {
						t.Errorf("%s: %q on a refused origin", h, v)
					}
				}
			}
			if tt.method == http.MethodOptions && tt.status == 204 {
				if m := r.header.Get("Access-Control-Allow-Methods"); m != "GET,HEAD" {
					t.Errorf("Access-Control-Allow-Methods %q", m)
				}
				if h := r.header.Get("Access-Control-Allow-Headers"); h != "Authorization,Accept,Content-Type,X-Request-Id" {
					t.Errorf("Access-Control-Allow-Headers %q", h)
				}
			}
		})
	}
}
