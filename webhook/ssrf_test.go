package webhook_test

import (
	"context"
	"strings"
	"testing"

	"github.com/creditledger/creditledger/webhook"
)

func TestCheckURL(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		url          string
		allowPrivate bool
		ok           bool
	}{
		{"http://127.0.0.1/", false, false},
		{"http://localhost/", false, false},
		{"http://api.localhost./hook", false, false},
		{"http://169.254.169.254/latest/meta-data", false, false},
		{"http://[fd00:ec2::254]/", false, false},
		{"http://10.0.0.1/", false, false},
		{"http://172.16.5.4/", false, false},
		{"http://192.168.1.1/", false, false},
		{"http://100.64.0.1/", false, false},
		{"http://0.0.0.0/", false, false},
		{"http://[::1]/", false, false},
		{"http://[::]/", false, false},
		{"http://[fe80::1]/", false, false},
		{"http://[fc00::1]/", false, false},
		{"http://[::ffff:127.0.0.1]/", false, false},
		{"http://[64:ff9b::a00:1]/", false, false}, // NAT64 of 10.0.0.1
		{"http://224.0.0.1/", false, false},
		{"http://2130706433/", false, false}, // 127.0.0.1 as one number
		{"http://127.1/", false, false},
		{"ftp://example.com/", false, false},
		{"file:///etc/passwd", false, false},
		{"http://user:pw@example.com/", false, false},
		{"https://user@example.com/", true, false},
		{"http:///path", false, false},
		{"example.com/hook", false, false},
		{"", false, false},
		{"https://example.com/hook\x00", true, false},
		{"https://example.com/hook?token=\xfe", true, false}, // url.Parse keeps it; PostgreSQL would not
		{"https://exa\xffmple.com/", true, false},
		{"https://example.com/" + strings.Repeat("a", 2048), true, false},
		{"https://example.com/caf%C3%A9?q=%E6%9D%B1", true, true},
		{"http://93.184.216.34/", false, true},
		{"https://93.184.216.34:8443/hooks?x=1", false, true},
		{"http://[2606:2800:220:1:248:1893:25c8:1946]/", false, true},
		{"http://127.0.0.1/", true, true},
		{"http://localhost:8080/hook", true, true},
	} {
		_, err := webhook.CheckURL(ctx, tc.url, tc.allowPrivate)
		switch {
		case tc.ok && err != nil:
			t.Errorf("CheckURL(%q, allowPrivate=%v) refused: %v", tc.url, tc.allowPrivate, err)
		case !tc.ok && err == nil:
			t.Errorf("CheckURL(%q, allowPrivate=%v) accepted", tc.url, tc.allowPrivate)
		case !tc.ok && !isInvalid(err, "url"):
			t.Errorf("CheckURL(%q): %v, want a validation error on url", tc.url, err)
		}
	}
}

// Creation refuses what CheckURL refuses, unless AllowPrivate.
func TestCreateEndpointRefusesPrivate(t *testing.T) {
	db := openDB(t)
	opts := testOptions(t)
	opts.AllowPrivate = false
	strict := webhook.New(db, opts)
	if _, _, err := strict.CreateEndpoint(context.Background(), webhook.NewEndpoint{URL: "http://127.0.0.1:9/hook"}); !isInvalid(err, "url") {
		t.Fatalf("strict: %v, want a validation error on url", err)
	}
	lax := webhook.New(db, testOptions(t))
	newEndpoint(t, lax, "http://127.0.0.1:9/hook")
}
