package wallet

import (
	"testing"
	"time"
)

// Burn-down order, without a database: lowest priority first, then soonest
// expiry (never-expiring last), then oldest; what the credits do not cover
// goes to overage only under policy allow and within its limit.
func TestBurnDownRules(t *testing.T) {
	for _, tc := range []struct {
		name   string
		debit  string
		want   []string // what remains on each grant below, in order
		reject string
	}{
		{"lowest priority first", "30", []string{"100", "0", "100", "100"}, ""},
		{"then the soonest expiry", "100", []string{"100", "0", "30", "100"}, ""},
		{"never-expiring last", "230", []string{"0", "0", "0", "100"}, ""},
		{"everything", "330", []string{"0", "0", "0", "0"}, ""},
		{"beyond the credits, policy block", "330.000000000001", []string{"100", "30", "100", "100"}, CodeInsufficientCredits},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemWallet(t, Wallet{})
			g := []Grant{
				m.grant("100", 50, nil),                // never expires
				m.grant("30", 10, after(48*time.Hour)), // burns first: lowest priority
				m.grant("100", 50, after(24*time.Hour)),
				m.grant("100", 50, nil), // made after g[0]: burns after it
			}
			if _, code := m.debit(tc.debit); code != tc.reject {
				t.Fatalf("debit %s: rejection %q, want %q", tc.debit, code, tc.reject)
			}
			for i, want := range tc.want {
				if got := m.remaining(g[i]); !got.Equal(*amt(want)) {
					t.Errorf("grant %d keeps %s, want %s", i, got, want)
				}
			}
		})
	}
}
