package wallet

import (
	"fmt"
	"testing"
)

// The overage rule, without a database: under policy allow what the
// credits do not cover goes to the overage receivable, up to the limit if
// there is one, counting what holds reserve there; beyond it, or under
// policy block, the whole debit (or hold) is refused with
// insufficient_credits and nothing is posted.
func TestOverageRules(t *testing.T) {
	type step struct {
		op     string // "debit" or "hold"
		amount string
		reject string
		// After the step (whether it posted or not): what is left on the
		// grant, and the overage receivable, posted and reserved.
		grant, overage, pending string
	}
	for _, tc := range []struct {
		name   string
		policy Policy
		limit  string // "": none
		steps  []step
	}{
		{"allow without a limit: the rest goes to overage", PolicyAllow, "", []step{
			{"debit", "150", "", "0", "50", "0"},
			{"debit", "1000000", "", "0", "1000050", "0"},
		}},
		{"allow: exactly at the limit passes", PolicyAllow, "20", []step{
			{"debit", "120", "", "0", "20", "0"},
		}},
		{"allow: a unit of 10^-12 beyond the limit is refused whole", PolicyAllow, "20", []step{
			{"debit", "120.000000000001", CodeInsufficientCredits, "100", "0", "0"},
		}},
		{"allow: the limit counts overage already owed", PolicyAllow, "20", []step{
			{"debit", "110", "", "0", "10", "0"},
			{"debit", "10.000000000001", CodeInsufficientCredits, "0", "10", "0"},
			{"debit", "10", "", "0", "20", "0"},
			{"debit", "0.000000000001", CodeInsufficientCredits, "0", "20", "0"},
		}},
		{"allow: a limit of zero allows no overage", PolicyAllow, "0", []step{
			{"debit", "100", "", "0", "0", "0"},
			{"debit", "0.000000000001", CodeInsufficientCredits, "0", "0", "0"},
		}},
		{"allow: holds count against the limit (pending overage)", PolicyAllow, "20", []step{
			{"hold", "110", "", "100", "0", "10"}, // the grant's 100 reserved, 10 pending on overage
			{"debit", "10.000000000001", CodeInsufficientCredits, "100", "0", "10"},
			{"hold", "10.000000000001", CodeInsufficientCredits, "100", "0", "10"},
			{"debit", "10", "", "100", "10", "10"},
			{"hold", "0.000000000001", CodeInsufficientCredits, "100", "10", "10"},
		}},
		{"block: exactly the credits pass", PolicyBlock, "", []step{
			{"debit", "100", "", "0", "0", "0"},
			{"debit", "0.000000000001", CodeInsufficientCredits, "0", "0", "0"},
		}},
		{"block: a unit beyond the credits is refused whole", PolicyBlock, "", []step{
			{"debit", "100.000000000001", CodeInsufficientCredits, "100", "0", "0"},
			{"hold", "100.000000000001", CodeInsufficientCredits, "100", "0", "0"},
		}},
		{"block: credits reserved by a hold are not there for a debit", PolicyBlock, "", []step{
			{"hold", "60", "", "100", "0", "0"},
			{"debit", "40.000000000001", CodeInsufficientCredits, "100", "0", "0"},
			{"debit", "40", "", "60", "0", "0"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := Wallet{OveragePolicy: tc.policy}
			if tc.limit != "" {
				w.OverageLimit = amt(tc.limit)
			}
			m := newMemWallet(t, w)
			g := m.grant("100", 50, nil)
			for i, s := range tc.steps {
				before := len(m.b.Outbox())
				var code string
				switch s.op {
				case "debit":
					var d Debit
					d, code = m.debit(s.amount)
					if code == "" && !d.Covered.Add(d.Overage).Equal(*amt(s.amount)) {
						t.Errorf("step %d: debit %s covered %s + overage %s", i, s.amount, d.Covered, d.Overage)
					}
				case "hold":
					_, code = m.hold(s.amount)
				}
				if code != s.reject {
					t.Fatalf("step %d: %s %s: rejection %q, want %q", i, s.op, s.amount, code, s.reject)
				}
				bal, _ := m.b.Balance(m.w.overage)
				got := fmt.Sprintf("grant %s, overage %s, pending %s", m.remaining(g), m.overage(), bal.DebitsPending)
				want := fmt.Sprintf("grant %s, overage %s, pending %s", s.grant, s.overage, s.pending)
				if got != want {
					t.Fatalf("step %d: %s %s: %s, want %s", i, s.op, s.amount, got, want)
				}
				if s.reject != "" && len(m.b.Outbox()) != before {
					t.Errorf("step %d: a refused %s emitted %v", i, s.op, m.b.Topics()[before:])
				}
			}
		})
	}
}

// A debit answers with what credits covered and what went to overage.
func TestOverageSplit(t *testing.T) {
	for _, tc := range []struct {
		name, debit, covered, overage, available string
	}{
		{"within the credits", "99.999999999999", "99.999999999999", "0", "0.000000000001"},
		{"all of the credits", "100", "100", "0", "0"},
		{"beyond the credits", "100.000000000001", "100", "0.000000000001", "0"},
		{"far beyond", "250.5", "100", "150.5", "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemWallet(t, Wallet{OveragePolicy: PolicyAllow})
			m.grant("60", 50, nil)
			m.grant("40", 10, nil)
			d, code := m.debit(tc.debit)
			if code != "" {
				t.Fatalf("debit %s refused: %s", tc.debit, code)
			}
			got := fmt.Sprintf("covered %s, overage %s, available %s", d.Covered, d.Overage, d.Balance.Available)
			want := fmt.Sprintf("covered %s, overage %s, available %s", tc.covered, tc.overage, tc.available)
			if got != want {
				t.Fatalf("debit %s: %s, want %s", tc.debit, got, want)
			}
			if !m.overage().Equal(*amt(tc.overage)) {
				t.Fatalf("overage receivable %s, want %s", m.overage(), tc.overage)
			}
		})
	}
}
