package webhook

import (
	"strings"
	"testing"
	"time"
)

// The previous secret signs only before its expiry, whatever the claim
// read: a claimed batch may be sent across the instant it expires.
func TestSignerHeader(t *testing.T) {
	until := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	cur, prev := []byte("current key"), []byte("previous key")
	body := []byte(`{}`)
	for _, tc := range []struct {
		name string
		g    signer
		at   time.Time
		want []string
	}{
		{"no previous", signer{current: cur}, until.Add(-time.Hour), []string{Sign(cur, "m", until.Add(-time.Hour).Unix(), body)}},
		{"before expiry", signer{current: cur, previous: prev, previousUntil: until}, until.Add(-time.Second),
			[]string{Sign(cur, "m", until.Add(-time.Second).Unix(), body), Sign(prev, "m", until.Add(-time.Second).Unix(), body)}},
		{"at expiry", signer{current: cur, previous: prev, previousUntil: until}, until, []string{Sign(cur, "m", until.Unix(), body)}},
		{"after expiry", signer{current: cur, previous: prev, previousUntil: until}, until.Add(time.Second),
			[]string{Sign(cur, "m", until.Add(time.Second).Unix(), body)}},
	} {
		if got := tc.g.header("m", tc.at, body); got != strings.Join(tc.want, " ") {
			t.Errorf("%s: header %q, want %q", tc.name, got, strings.Join(tc.want, " "))
		}
	}
}
