package wallet

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
)

// apply runs one step of a test's script on the wallet: "grant 100",
// "debit 10", "hold 10", "charge 5" (metered usage, through ChargeUsage;
// negative is a credit back) or "close" (the cycle's invoice).
func (m *memWallet) apply(step string) {
	m.t.Helper()
	f := strings.Fields(step)
	switch {
	case f[0] == "grant" && len(f) == 2:
		m.grant(f[1], 50, nil)
	case f[0] == "debit" && len(f) == 2:
		if _, code := m.debit(f[1]); code != "" {
			m.t.Fatalf("%s: refused: %s", step, code)
		}
	case f[0] == "hold" && len(f) == 2:
		if _, code := m.hold(f[1]); code != "" {
			m.t.Fatalf("%s: refused: %s", step, code)
		}
	case f[0] == "charge" && len(f) == 2:
		m.charge(f[1], UsageLine{Meter: testMeter, MeterCode: "tokens", DimsKey: "{}", Quantity: decimal.NewFromInt(1)})
	case step == "settle":
		m.settleOwed()
	default:
		m.t.Fatalf("unknown step %q", step)
	}
}

var testMeter = uuid.MustParse("00000000-0000-4000-8000-000000000001")

// said is an outbox message in a line: its topic and the payload fields
// the reactions' rules decide.
func (msg message) said() string {
	d := msg.Data
	switch msg.Topic {
	case TopicThresholdReached:
		return fmt.Sprintf("threshold %v: used %v, available %v of %v", d["threshold"], d["percent_used"], d["available"], d["reference"])
	case TopicDepleted, TopicOverageStarted:
		return fmt.Sprintf("%s: available %v, overage %v", msg.Topic, d["available"], d["overage"])
	}
	return msg.Topic
}

// The reactions' rules without a database: every threshold crossed since
// the reference fires once, in ascending order, however far one op jumps;
// wallet.depleted at zero, once; wallet.overage_started when the overage
// receivable leaves zero, once until it is back to zero; a credit re-arms
// the thresholds, a usage credit-back does not.
func TestThresholdRules(t *testing.T) {
	type step struct {
		do   string
		said []string // what the step emitted, in order
	}
	for _, tc := range []struct {
		name       string
		policy     Policy
		thresholds []int
		steps      []step
	}{
		{"one by one", PolicyBlock, nil, []step{
			{"grant 100", nil},
			{"debit 49.99", nil},
			{"debit 0.01", []string{"threshold 50: used 50, available 50 of 100"}},
			{"debit 30", []string{"threshold 80: used 80, available 20 of 100"}},
			{"debit 19.99", nil},
			{"debit 0.01", []string{"threshold 100: used 100, available 0 of 100", "wallet.depleted: available 0, overage 0"}},
		}},
		{"one debit jumps all three: all fire, ascending, once", PolicyBlock, nil, []step{
			{"grant 100", nil},
			{"debit 100", []string{
				"threshold 50: used 100, available 0 of 100",
				"threshold 80: used 100, available 0 of 100",
				"threshold 100: used 100, available 0 of 100",
				"wallet.depleted: available 0, overage 0",
			}},
		}},
		{"two of three at once", PolicyBlock, nil, []step{
			{"grant 10", nil},
			{"debit 8.5", []string{"threshold 50: used 85, available 1.5 of 10", "threshold 80: used 85, available 1.5 of 10"}},
			{"debit 1.5", []string{"threshold 100: used 100, available 0 of 10", "wallet.depleted: available 0, overage 0"}},
		}},
		{"percent used has two decimals, rounded", PolicyBlock, nil, []step{
			{"grant 3", nil},
			{"debit 2", []string{"threshold 50: used 66.67, available 1 of 3"}},
			{"debit 0.5", []string{"threshold 80: used 83.33, available 0.5 of 3"}},
		}},
		{"a unit short of a threshold fires nothing", PolicyBlock, nil, []step{
			{"grant 100", nil},
			{"debit 49.999999999999", nil},
			{"debit 0.000000000001", []string{"threshold 50: used 50, available 50 of 100"}},
		}},
		{"a grant re-arms the thresholds and depleted", PolicyBlock, nil, []step{
			{"grant 100", nil},
			{"debit 90", []string{"threshold 50: used 90, available 10 of 100", "threshold 80: used 90, available 10 of 100"}},
			{"grant 90", nil}, // the reference is 10 + 90 = 100 again
			{"debit 40", nil},
			{"debit 10", []string{"threshold 50: used 50, available 50 of 100"}},
			{"debit 50", []string{
				"threshold 80: used 100, available 0 of 100",
				"threshold 100: used 100, available 0 of 100",
				"wallet.depleted: available 0, overage 0",
			}},
		}},
		{"a grant after depletion re-arms depleted", PolicyBlock, []int{}, []step{
			{"grant 10", nil},
			{"debit 10", []string{"wallet.depleted: available 0, overage 0"}},
			{"grant 10", nil},
			{"debit 9.999999999999", nil},
			{"debit 0.000000000001", []string{"wallet.depleted: available 0, overage 0"}},
		}},
		{"custom thresholds", PolicyBlock, []int{25, 90}, []step{
			{"grant 200", nil},
			{"debit 50", []string{"threshold 25: used 25, available 150 of 200"}},
			{"debit 129", nil},
			{"debit 1", []string{"threshold 90: used 90, available 20 of 200"}},
			{"debit 20", []string{"wallet.depleted: available 0, overage 0"}},
		}},
		{"a hold lowers available like a debit", PolicyBlock, nil, []step{
			{"grant 100", nil},
			{"hold 80", []string{"threshold 50: used 80, available 20 of 100", "threshold 80: used 80, available 20 of 100"}},
		}},
		{"depleted once, overage started once", PolicyAllow, nil, []step{
			{"grant 10", nil},
			{"debit 10", []string{
				"threshold 50: used 100, available 0 of 10",
				"threshold 80: used 100, available 0 of 10",
				"threshold 100: used 100, available 0 of 10",
				"wallet.depleted: available 0, overage 0",
			}},
			{"debit 5", []string{"wallet.overage_started: available 0, overage 5"}},
			{"debit 5", nil},
		}},
		{"usage: overage started on the first uncovered charge, not again", PolicyBlock, nil, []step{
			{"grant 10", nil},
			{"charge 8", []string{"threshold 50: used 80, available 2 of 10", "threshold 80: used 80, available 2 of 10"}},
			{"charge 5", []string{
				"threshold 100: used 100, available 0 of 10",
				"wallet.depleted: available 0, overage 3",
				"wallet.overage_started: available 0, overage 3",
			}},
			{"charge 5", nil},
			{"charge 0.000000000001", nil},
		}},
		{"usage without credits ever: no thresholds, no depleted", PolicyBlock, nil, []step{
			{"charge 5", []string{"wallet.overage_started: available 0, overage 5"}},
			{"charge 5", nil},
		}},
		{"a credit back to zero overage re-arms overage started", PolicyBlock, nil, []step{
			{"charge 5", []string{"wallet.overage_started: available 0, overage 5"}},
			{"charge -5", nil},
			{"charge 1", []string{"wallet.overage_started: available 0, overage 1"}},
		}},
		{"a usage credit-back does not re-arm the thresholds", PolicyBlock, nil, []step{
			{"grant 100", nil},
			{"charge 60", []string{"threshold 50: used 60, available 40 of 100"}},
			{"charge -30", nil}, // a credit grant of 30: 70 available, the reference stays 100
			{"charge 49.999999999999", nil},
			{"charge 0.000000000001", []string{"threshold 80: used 80, available 20 of 100"}},
		}},
		{"settling the overage into an invoice re-arms overage started", PolicyAllow, nil, []step{
			{"grant 10", nil},
			{"debit 8", []string{"threshold 50: used 80, available 2 of 10", "threshold 80: used 80, available 2 of 10"}},
			{"debit 5", []string{
				"threshold 100: used 100, available 0 of 10",
				"wallet.depleted: available 0, overage 3",
				"wallet.overage_started: available 0, overage 3",
			}},
			{"settle", nil},
			{"debit 1", []string{"wallet.overage_started: available 0, overage 1"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemWallet(t, Wallet{OveragePolicy: tc.policy, AlertThresholds: tc.thresholds})
			for i, s := range tc.steps {
				before := len(m.b.Outbox())
				m.apply(s.do)
				var said []string
				for _, msg := range m.messages()[before:] {
					said = append(said, msg.said())
				}
				if !slices.Equal(said, s.said) {
					t.Fatalf("step %d (%s) emitted:\n\t%s\nwant:\n\t%s", i, s.do, strings.Join(said, "\n\t"), strings.Join(s.said, "\n\t"))
				}
			}
		})
	}
}

// The reference is available right after the latest credit (a grant, a
// top-up); debits and holds do not move it, nor does a usage credit-back.
func TestThresholdReference(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []string
		ref   string // "": none yet
		fired int
	}{
		{"none before the first credit", []string{"debit 0.000000000001"}, "", 0},
		{"the first grant", []string{"grant 100"}, "100", 0},
		{"a debit keeps it", []string{"grant 100", "debit 60"}, "100", 1},
		{"a hold keeps it", []string{"grant 100", "hold 85"}, "100", 2},
		{"a grant sets it to what is available after it", []string{"grant 100", "debit 60", "grant 25"}, "65", 0},
		{"a grant while a hold reserves credits", []string{"grant 100", "hold 30", "grant 10"}, "80", 0},
		{"a credit back keeps it", []string{"grant 100", "charge 90", "charge -50"}, "100", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemWallet(t, Wallet{OveragePolicy: PolicyAllow})
			for _, s := range tc.steps {
				m.apply(s)
			}
			r := m.w.react
			got := ""
			if r.Reference != nil {
				got = r.Reference.String()
			}
			if got != tc.ref || r.Fired != tc.fired {
				t.Fatalf("reference %q with %d fired, want %q with %d", got, r.Fired, tc.ref, tc.fired)
			}
		})
	}
}
