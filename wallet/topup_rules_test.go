package wallet

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/ledger/ledgertest"
)

// The size of an auto top-up: as many multiples of Amount as close the
// whole gap below the threshold, or what brings available up to
// TargetBalance; within what one operation may move.
func TestAutoTopupSize(t *testing.T) {
	for _, tc := range []struct {
		name                        string
		threshold, amount, target   string // amount or target: "" for none
		available, want, wantCapped string // wantCapped: "" when it is want
	}{
		{"a gap of exactly one amount", "60", "25", "", "35", "25", ""},
		{"a unit beyond one amount takes two", "60", "25", "", "34.999999999999", "50", ""},
		{"two amounts close the gap", "60", "25", "", "10", "50", ""},
		{"a gap of a unit takes one amount", "60", "25", "", "59.999999999999", "25", ""},
		{"nothing left", "60", "25", "", "0", "75", ""},
		{"exact decimals: 3 × 0.3", "1", "0.3", "", "0.1", "0.9", ""},
		{"exact decimals: 4 × 0.3", "1", "0.3", "", "0", "1.2", ""},
		{"the smallest amount", "0.000000000003", "0.000000000001", "", "0", "0.000000000003", ""},
		{"to the target balance", "50", "", "200", "37.5", "162.5", ""},
		{"to the target balance from nothing", "50", "", "200", "0", "200", ""},
		{"to the target balance, a unit below the threshold", "50", "", "200", "49.999999999999", "150.000000000001", ""},
		{"the largest amount the ledger moves", "1000000000000000", "1000000000000000", "", "0", "1000000000000000", ""},
		{"beyond what one operation moves: capped", "1000000000000000", "600000000000000", "", "0", "1200000000000000", "1000000000000000"},
		{"a target balance of the limit from nothing", "1", "", "1000000000000000", "0", "1000000000000000", ""},
		{"a large amount and a gap a unit beyond it", "200000", "100000", "", "99999.999999999999", "200000", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &AutoTopup{Enabled: true, Threshold: *amt(tc.threshold)}
			if tc.amount != "" {
				r.Amount = amt(tc.amount)
			}
			if tc.target != "" {
				r.TargetBalance = amt(tc.target)
			}
			avail := *amt(tc.available)
			got := r.size(avail)
			if !got.Equal(*amt(tc.want)) {
				t.Fatalf("size at %s = %s, want %s", tc.available, got, tc.want)
			}
			if r.Amount != nil && avail.Add(got).Cmp(r.Threshold) < 0 {
				t.Fatalf("size %s leaves %s, below the threshold %s", got, avail.Add(got), r.Threshold)
			}
			wantCapped := tc.want
			if tc.wantCapped != "" {
				wantCapped = tc.wantCapped
			}
			if c := capped(got); !c.Equal(*amt(wantCapped)) || ledger.CheckOpAmount(c) != nil {
				t.Fatalf("capped(%s) = %s, want %s within the limit", got, c, wantCapped)
			}
		})
	}
}

// The wait after n consecutive failed top-ups: a minute, doubling, at most
// six hours.
func TestAutoTopupBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{
		1: time.Minute, 2: 2 * time.Minute, 3: 4 * time.Minute, 9: 256 * time.Minute,
		10: 6 * time.Hour, 17: 6 * time.Hour, 100: 6 * time.Hour,
	} {
		if got := topupBackoff(n); got != want {
			t.Errorf("backoff after %d failures: %s, want %s", n, got, want)
		}
	}
}

// settle confirms or fails the latest top-up the wallet asked for.
func (m *memWallet) settle(confirm bool) Topup {
	m.t.Helper()
	req := m.messages(TopicTopupRequested)
	if len(req) == 0 {
		m.t.Fatal("no top-up was requested")
	}
	id, err := uuid.Parse(req[len(req)-1].Data["id"].(string))
	if err != nil {
		m.t.Fatal(err)
	}
	return ledgertest.Posted[Topup](m.b, &settleTopupOp{base: m.base(), topupID: TopupID(id), confirm: confirm, reason: "card declined"})
}

// The rules that start a top-up inside the batch that lowers the balance:
// below the threshold (not at it), nothing in flight, no failure backoff
// running, the day's cap not reached; one topup.requested, sized when it
// is asked.
func TestAutoTopupStartRules(t *testing.T) {
	type step struct {
		do   string // as memWallet.apply, or "confirm", "fail", "tick <duration>"
		said []string
	}
	rule := func(threshold, amount, target string, perDay int) AutoTopup {
		r := AutoTopup{Enabled: true, Threshold: *amt(threshold), Kind: Paid, Payment: PaymentConfirm, MaxPerDay: perDay}
		if amount != "" {
			r.Amount = amt(amount)
		}
		if target != "" {
			r.TargetBalance = amt(target)
		}
		return r
	}
	disabled := rule("50", "25", "", 10)
	disabled.Enabled = false
	for _, tc := range []struct {
		name  string
		rule  AutoTopup
		steps []step
	}{
		{"below the threshold starts one, at it nothing", rule("50", "25", "", 10), []step{
			{"grant 100", nil},
			{"debit 50", nil},
			{"debit 0.000000000001", []string{"topup.requested 25 at 49.999999999999"}},
		}},
		{"one in flight blocks another until it settles", rule("50", "25", "", 10), []step{
			{"grant 100", nil},
			{"debit 60", []string{"topup.requested 25 at 40"}},
			{"debit 30", nil},
			{"hold 5", nil},
			{"charge 1", nil},
			{"confirm", []string{"topup.succeeded 25 at 40"}},
			{"debit 1", []string{"topup.requested 25 at 28"}}, // 40 - 30 - 5 - 1 + 25 - 1
		}},
		{"to the target balance", rule("50", "", "200", 10), []step{
			{"grant 100", nil},
			{"debit 60", []string{"topup.requested 160 at 40"}},
		}},
		{"usage and holds start one too", rule("50", "100", "", 10), []step{
			{"grant 100", nil},
			{"charge 51", []string{"topup.requested 100 at 49"}},
			{"confirm", []string{"topup.succeeded 100 at 49"}},
			{"hold 100", []string{"topup.requested 100 at 49"}},
		}},
		{"max_per_day, counted per UTC day", rule("50", "100", "", 2), []step{
			{"grant 100", nil},
			{"debit 60", []string{"topup.requested 100 at 40"}},
			{"confirm", []string{"topup.succeeded 100 at 40"}},
			{"debit 100", []string{"topup.requested 100 at 40"}},
			{"fail", []string{"topup.failed 100 at 40"}}, // a failure counts as the day's second
			{"tick 1h", nil},
			{"debit 1", nil},
			{"tick 10h59m58s", nil}, // 23:59:59
			{"debit 1", nil},
			{"tick 1s", nil}, // midnight UTC: a new day
			{"debit 1", []string{"topup.requested 100 at 37"}},
		}},
		{"failure backoff: a minute, then two", rule("50", "100", "", 10), []step{
			{"grant 100", nil},
			{"debit 60", []string{"topup.requested 100 at 40"}},
			{"fail", []string{"topup.failed 100 at 40"}},
			{"debit 1", nil},
			{"tick 59.999999s", nil},
			{"debit 1", nil},
			{"tick 1µs", nil}, // exactly when the backoff ends
			{"debit 1", []string{"topup.requested 100 at 37"}},
			{"fail", []string{"topup.failed 100 at 37"}},
			{"tick 1m59s", nil},
			{"debit 1", nil},
			{"tick 1s", nil},
			{"debit 1", []string{"topup.requested 100 at 35"}},
			{"confirm", []string{"topup.succeeded 100 at 35"}},
		}},
		{"capped at what one operation moves", rule("1000000000000000", "600000000000000", "", 10), []step{
			{"grant 1", nil},
			{"debit 1", []string{"topup.requested 1000000000000000 at 0"}},
		}},
		{"a disabled rule starts nothing", disabled, []step{
			{"grant 100", nil},
			{"debit 100", nil},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemWallet(t, Wallet{OveragePolicy: PolicyAllow, AlertThresholds: []int{}})
			r := tc.rule
			r.WalletID = m.w.ID
			m.w.rule = &r
			for i, s := range tc.steps {
				before := len(m.b.Outbox())
				f := strings.Fields(s.do)
				switch f[0] {
				case "confirm", "fail":
					m.settle(f[0] == "confirm")
				case "tick":
					d, err := time.ParseDuration(f[1])
					if err != nil {
						t.Fatal(err)
					}
					m.tick(d)
				default:
					m.apply(s.do)
				}
				var said []string
				for _, msg := range m.messages()[before:] {
					if !strings.HasPrefix(msg.Topic, "topup.") {
						continue
					}
					said = append(said, fmt.Sprintf("%s %v at %v", msg.Topic, msg.Data["amount"], msg.Data["available_at_request"]))
				}
				if !slices.Equal(said, s.said) {
					t.Fatalf("step %d (%s) emitted %q, want %q", i, s.do, said, s.said)
				}
			}
		})
	}
}

// What a started top-up is and what the rule remembers: the top-up in
// flight, the day's count, the failures and the backoff.
func TestAutoTopupState(t *testing.T) {
	m := newMemWallet(t, Wallet{OveragePolicy: PolicyBlock, AlertThresholds: []int{}})
	m.w.rule = &AutoTopup{WalletID: m.w.ID, Enabled: true, Threshold: *amt("50"), Amount: amt("30"),
		Kind: Promotional, Payment: PaymentImmediate, MaxPerDay: 10}
	m.grant("100", 50, nil)
	m.debit("75")
	req := m.messages(TopicTopupRequested)
	if len(req) != 1 {
		t.Fatalf("top-ups requested: %d", len(req))
	}
	d := req[0].Data
	if d["amount"] != "30" || d["available_at_request"] != "25" || d["status"] != string(TopupRequested) ||
		d["kind"] != string(Promotional) || d["payment"] != string(PaymentImmediate) || d["wallet_id"] != m.w.ID.String() ||
		d["customer_id"] != m.w.CustomerID || d["asset"] != "CREDITS" {
		t.Fatalf("topup.requested %v", d)
	}
	r := m.w.react
	if r.TopupInFlight == nil || r.TopupInFlight.String() != d["id"] || r.TopupsToday != 1 || r.TopupDay != "2026-03-10" {
		t.Fatalf("state after the request %+v", r)
	}
	failed := m.settle(false)
	r = m.w.react
	if failed.Status != TopupFailed || failed.FailureReason != "card declined" || r.TopupInFlight != nil ||
		r.TopupFailures != 1 || r.TopupRetry == nil || !r.TopupRetry.Equal(m.now.Add(time.Minute)) {
		t.Fatalf("after a failure: top-up %+v, state %+v", failed, r)
	}
	if code := m.b.Rejected(&settleTopupOp{base: m.base(), topupID: failed.ID, confirm: true}); code != CodeTopupClosed {
		t.Fatalf("confirming a failed top-up: %q, want %s", code, CodeTopupClosed)
	}
	m.tick(time.Minute)
	m.debit("1")
	ok := m.settle(true)
	r = m.w.react
	if ok.Status != TopupSucceeded || ok.GrantID == nil || r.TopupInFlight != nil || r.TopupFailures != 0 || r.TopupRetry != nil || r.TopupsToday != 2 {
		t.Fatalf("after a success: top-up %+v, state %+v", ok, r)
	}
	// Immediate: funded by the wallet's billable account, owed on the
	// next invoice; the top-up re-arms the reference.
	if got := m.posted(billableAccount(m.w.ID), ledger.Debit); !got.Equal(*amt("30")) {
		t.Fatalf("billable %s, want 30", got)
	}
	if g := m.st.grants.byID[*ok.GrantID]; g == nil || g.Kind != Promotional || !m.remaining(g.Grant).Equal(*amt("30")) {
		t.Fatalf("top-up grant %+v", g)
	}
	if r.Reference == nil || !r.Reference.Equal(*amt("54")) {
		t.Fatalf("reference after the top-up %v, want 54", r.Reference)
	}
}
