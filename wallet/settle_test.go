package wallet

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/ledger"
)

// usage is a usage charge as metering would make it: amount for qty units
// of a meter with dimensions (k=v,… in order), at a per-unit price
// ("": another model, billed at the average price).
type usage struct {
	amount, meter, dims, qty, unitPrice string
}

func (u usage) line() UsageLine {
	l := UsageLine{Meter: uuid.NewSHA1(uuid.NameSpaceOID, []byte(u.meter)), MeterCode: u.meter, Dims: map[string]string{},
		Quantity: decimal.RequireFromString(u.qty)}
	for _, kv := range strings.Split(u.dims, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			l.Dims[k] = v
		}
	}
	l.DimsKey = fmt.Sprint(l.Dims) // canonical enough: fmt sorts map keys
	if u.unitPrice != "" {
		p := decimal.RequireFromString(u.unitPrice)
		l.UnitPrice = &p
	}
	return l
}

// said is an owed usage line as the tests write it: "<description>: <qty>
// = <amount>", with " at <unit price>" for per-unit prices.
func (o Owed) said() string {
	at := ""
	if o.UnitPrice != nil {
		at = " at " + o.UnitPrice.String()
	}
	return fmt.Sprintf("%s: %s%s = %s", o.Description, o.Quantity, at, o.Amount)
}

// What a wallet owes, without a database: a usage line per meter and
// dimensions with the part of each charge the credits did not cover (its
// units in proportion), the debits and captures the usage lines do not
// explain (the receivable is the authority), all moved by Settle, after
// which nothing is owed.
func TestSettlement(t *testing.T) {
	for _, tc := range []struct {
		name    string
		grant   string // "": none
		charges []usage
		debits  []string
		lines   []string
		owed    string // the debits the usage lines do not explain
	}{
		{"per unit and graduated, partly covered",
			"0.004",
			[]usage{
				{"0.003", "tokens", "model=big", "1500", "0.000002"}, // covered
				{"0.003", "tokens", "model=big", "1500", "0.000002"}, // 0.001 covered: 1,000 tokens billed
				{"0.003", "tokens", "model=big", "1500", "0.000002"},
				{"0.003", "tokens", "model=big", "1500", "0.000002"},
				{"0.003", "tokens", "model=big", "1500", "0.000002"},
				{"0.009", "tokens", "model=small", "900", ""}, // graduated 1000 × 0.00001, then 0.000001
				{"0.0018", "tokens", "model=small", "900", ""},
				{"0.0009", "tokens", "model=small", "900", ""},
			}, nil,
			[]string{
				"tokens (model=big): 5500 at 0.000002 = 0.011",
				"tokens (model=small): 2700 = 0.0117",
			},
			"0"},
		{"another model partly covered bills the uncovered share of the units", "0.005",
			[]usage{{"0.009", "tokens", "", "900", ""}}, nil,
			[]string{"tokens: 400 = 0.004"},
			"0"},
		{"dimensions in order, one line per meter and dimensions", "",
			[]usage{
				{"1.5", "tokens", "token_type=input,model=gpt", "3", "0.5"},
				{"2", "tokens", "model=gpt", "4", "0.5"},
				{"1", "calls", "model=gpt", "1", "1"},
				{"1.5", "tokens", "token_type=input,model=gpt", "3", "0.5"},
			}, nil,
			[]string{
				"calls (model=gpt): 1 at 1 = 1",
				"tokens (model=gpt): 4 at 0.5 = 2",
				"tokens (model=gpt, token_type=input): 6 at 0.5 = 3",
			},
			"0"},
		{"a credit back lowers its line, and its units still count", "",
			[]usage{{"9", "units", "", "900", ""}, {"-0.2", "units", "", "200", ""}}, nil,
			[]string{"units: 1100 = 8.8"},
			"0"},
		{"covered usage makes no line", "10",
			[]usage{{"10", "units", "", "1000", "0.01"}}, nil,
			nil,
			"0"},
		{"uncovered debits", "5", nil, []string{"12.345678"},
			nil,
			"7.345678"},
		{"usage and debits", "",
			[]usage{{"3", "api", "region=eu", "6", "0.5"}}, []string{"2"},
			[]string{"api (region=eu): 6 at 0.5 = 3"},
			"2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemWallet(t, Wallet{OveragePolicy: PolicyAllow})
			if tc.grant != "" {
				m.grant(tc.grant, 50, nil)
			}
			for _, u := range tc.charges {
				m.charge(u.amount, u.line())
			}
			for _, d := range tc.debits {
				if _, code := m.debit(d); code != "" {
					t.Fatalf("debit %s: %s", d, code)
				}
			}
			owed := m.overage()
			st := m.settleOwed()
			var lines []string
			var sum ledger.Amount
			for _, l := range st.Usage {
				lines = append(lines, l.said())
				sum = sum.Add(l.Amount)
			}
			if !slices.Equal(lines, tc.lines) {
				t.Fatalf("lines:\n\t%s\nwant:\n\t%s", strings.Join(lines, "\n\t"), strings.Join(tc.lines, "\n\t"))
			}
			if st.Debits.String() != tc.owed {
				t.Fatalf("debits %s, want %s", st.Debits, tc.owed)
			}
			// The ledger is the authority: the lines and the debits sum to
			// the receivable moved, and nothing is owed on the wallet after.
			if !sum.Add(st.Debits).Equal(owed) || !st.Overage.Equal(owed) || !m.overage().IsZero() {
				t.Fatalf("lines sum to %s, debits %s, moved %s, receivable was %s and is %s", sum, st.Debits, st.Overage, owed, m.overage())
			}
			if !owed.IsZero() && !m.posted(m.sys.receivable, ledger.Debit).Equal(owed) {
				t.Fatalf("receivable %s, want %s", m.posted(m.sys.receivable, ledger.Debit), owed)
			}
			// Settled twice, nothing is owed the second time.
			if again := m.settleOwed(); len(again.Usage) != 0 || !again.Overage.IsZero() || !again.Debits.IsZero() {
				t.Fatalf("settled again: %+v", again)
			}
		})
	}
}

// A top-up credited before it was paid is owed until a settlement; a void
// of its grant after that is owed back (negative), the next time.
func TestSettlementOfTopups(t *testing.T) {
	m := newMemWallet(t, Wallet{OveragePolicy: PolicyBlock, AlertThresholds: []int{}})
	m.w.rule = &AutoTopup{WalletID: m.w.ID, Enabled: true, Threshold: *amt("5"), Amount: amt("20.004"),
		Kind: Paid, Payment: PaymentImmediate, MaxPerDay: 10}
	m.grant("10", 50, nil)
	m.debit("10")
	tp := m.settle(true) // credited now, owed on the invoice
	m.debit("0.009")     // from the top-up's grant: 19.995 left
	first := m.settleOwed()
	if len(first.Topups) != 1 || first.Topups[0].ID != tp.ID || first.Topups[0].Amount.String() != "20.004" ||
		!first.Adjustment.IsZero() || first.Billable.String() != "20.004" || !first.Overage.IsZero() {
		t.Fatalf("first settlement %+v", first)
	}
	void := &closeGrantOp{base: m.base(), grantID: *tp.GrantID}
	if code := m.b.Rejected(void); code != "" {
		t.Fatalf("void: %s", code)
	}
	second := m.settleOwed()
	if len(second.Topups) != 0 || second.Adjustment.String() != "-19.995" || second.Billable.String() != "-19.995" {
		t.Fatalf("second settlement %+v", second)
	}
}
