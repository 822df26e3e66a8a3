package wallet

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

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

func (l InvoiceLine) said() string {
	return fmt.Sprintf("%s %s: %s × %s = %s", l.Kind, l.Description, l.Quantity, l.UnitPrice, l.Amount)
}

// The invoice's lines without a database: a usage line per meter and
// dimensions with the part of each charge the credits did not cover (the
// per-unit price, or the average), a line for uncovered debits and
// captures (the receivable minus the usage lines), and a total rounded
// toward zero to the minor unit.
func TestInvoiceLines(t *testing.T) {
	for _, tc := range []struct {
		name    string
		grant   string // "": none
		charges []usage
		debits  []string
		lines   []string
		// subtotal, total, carried out
		sums [3]string
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
				"usage tokens (model=big): 5500 × 0.000002 = 0.011",
				"usage tokens (model=small): 2700 × 0.000004333333 = 0.0117",
			},
			[3]string{"0.0227", "0.02", "0.0027"}},
		{"another model partly covered bills the uncovered share of the units", "0.005",
			[]usage{{"0.009", "tokens", "", "900", ""}}, nil,
			[]string{"usage tokens: 400 × 0.00001 = 0.004"},
			[3]string{"0.004", "0", "0.004"}},
		{"dimensions in order, one line per meter and dimensions", "",
			[]usage{
				{"1.5", "tokens", "token_type=input,model=gpt", "3", "0.5"},
				{"2", "tokens", "model=gpt", "4", "0.5"},
				{"1", "calls", "model=gpt", "1", "1"},
				{"1.5", "tokens", "token_type=input,model=gpt", "3", "0.5"},
			}, nil,
			[]string{
				"usage calls (model=gpt): 1 × 1 = 1",
				"usage tokens (model=gpt): 4 × 0.5 = 2",
				"usage tokens (model=gpt, token_type=input): 6 × 0.5 = 3",
			},
			[3]string{"6", "6", "0"}},
		{"a credit back lowers its line, and its units still count", "",
			[]usage{{"9", "units", "", "900", ""}, {"-0.2", "units", "", "200", ""}}, nil,
			[]string{"usage units: 1100 × 0.008 = 8.8"},
			[3]string{"8.8", "8.8", "0"}},
		{"covered usage makes no line", "10",
			[]usage{{"10", "units", "", "1000", "0.01"}}, nil,
			nil,
			[3]string{"0", "0", "0"}},
		{"uncovered debits", "5", nil, []string{"12.345678"},
			[]string{"debits Debits and captures not covered by credits: 1 × 7.345678 = 7.345678"},
			[3]string{"7.345678", "7.34", "0.005678"}},
		{"usage and debits", "",
			[]usage{{"3", "api", "region=eu", "6", "0.5"}}, []string{"2"},
			[]string{
				"usage api (region=eu): 6 × 0.5 = 3",
				"debits Debits and captures not covered by credits: 1 × 2 = 2",
			},
			[3]string{"5", "5", "0"}},
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
			inv := m.closeCycle()
			var lines []string
			var sum ledger.Amount
			for _, l := range inv.Lines {
				lines = append(lines, l.said())
				sum = sum.Add(l.Amount)
			}
			if !slices.Equal(lines, tc.lines) {
				t.Fatalf("lines:\n\t%s\nwant:\n\t%s", strings.Join(lines, "\n\t"), strings.Join(tc.lines, "\n\t"))
			}
			got := [3]string{inv.Subtotal.String(), inv.Total.String(), inv.CarriedOut.String()}
			if got != tc.sums {
				t.Fatalf("subtotal, total, carried %v, want %v", got, tc.sums)
			}
			// The ledger is the authority: the lines sum to the receivable
			// the invoice settled, and nothing is owed on the wallet after.
			if !sum.Equal(owed) || !inv.Subtotal.Equal(owed) || !m.overage().IsZero() {
				t.Fatalf("lines sum to %s, subtotal %s, receivable was %s and is %s", sum, inv.Subtotal, owed, m.overage())
			}
			if !m.posted(roundingAccount(m.w.ID), ledger.Debit).Equal(inv.CarriedOut) {
				t.Fatalf("rounding account %s, carried out %s", m.posted(roundingAccount(m.w.ID), ledger.Debit), inv.CarriedOut)
			}
			start, end := Cycle(t0, m.now)
			if !inv.PeriodStart.Equal(start) || !inv.PeriodEnd.Equal(end) || inv.Status != InvoiceIssued || inv.Currency != "CREDITS" {
				t.Fatalf("invoice %+v", inv)
			}
			if created := m.messages(TopicInvoiceCreated); len(created) != 1 || created[0].Data["id"] != inv.ID.String() ||
				created[0].Data["total"] != inv.Total.String() {
				t.Fatalf("invoice.created %v", created)
			}
		})
	}
}

// The rounding rule: each total is what is owed plus what the previous
// invoice carried, rounded toward zero to the currency's minor unit; the
// rest, less than one minor unit, is carried into the next invoice in the
// wallet's rounding account, so billed + carried is everything owed.
func TestInvoiceRounding(t *testing.T) {
	type cycle struct{ debit, total, carried string }
	for _, tc := range []struct {
		name   string
		asset  string
		minor  int32
		cycles []cycle
	}{
		{"sub-cent usage is carried until it makes a cent", "CREDITS", 2, []cycle{
			{"0.004", "0", "0.004"}, {"0.004", "0", "0.008"}, {"0.004", "0.01", "0.002"},
		}},
		{"the carry completes the next invoice", "USD", 2, []cycle{
			{"7.345678", "7.34", "0.005678"}, {"0.004322", "0.01", "0"},
		}},
		{"the last 10^-12 of a cent bills it", "USD", 2, []cycle{
			{"0.999999999999", "0.99", "0.009999999999"}, {"0.000000000001", "0.01", "0"}, {"", "0", "0"},
		}},
		{"no minor unit (JPY)", "JPY", 0, []cycle{
			{"1234.56", "1234", "0.56"}, {"0.45", "1", "0.01"}, {"0.98", "0", "0.99"}, {"0.01", "1", "0"},
		}},
		{"three minor units (KWD)", "KWD", 3, []cycle{
			{"1.23456", "1.234", "0.00056"}, {"0.00044", "0.001", "0"}, {"0.0009999", "0", "0.0009999"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemWallet(t, Wallet{OveragePolicy: PolicyAllow, Asset: tc.asset})
			var billed, owed ledger.Amount
			for i, c := range tc.cycles {
				if c.debit != "" {
					m.debit(c.debit)
					owed = owed.Add(*amt(c.debit))
				}
				carriedIn := m.posted(roundingAccount(m.w.ID), ledger.Debit)
				inv := m.closeCycle()
				if inv.MinorUnits != tc.minor || inv.Currency != tc.asset || !inv.CarriedIn.Equal(carriedIn) ||
					!inv.Total.Equal(*amt(c.total)) || !inv.CarriedOut.Equal(*amt(c.carried)) {
					t.Fatalf("cycle %d: %s minor units %d, carried in %s, total %s, carried out %s; want %d, %s, %s, %s",
						i, inv.Currency, inv.MinorUnits, inv.CarriedIn, inv.Total, inv.CarriedOut, tc.minor, carriedIn, c.total, c.carried)
				}
				billed = billed.Add(inv.Total)
				if got := billed.Add(m.posted(roundingAccount(m.w.ID), ledger.Debit)); !got.Equal(owed) {
					t.Fatalf("cycle %d: billed %s + carried %s ≠ owed %s", i, billed, inv.CarriedOut, owed)
				}
				m.tick(32 * 24 * time.Hour) // into the next cycle
			}
		})
	}
}

// A credit (an immediate top-up voided after it was invoiced) rounds
// toward zero too: the customer is not credited a fraction not yet owed.
func TestInvoiceCreditRoundsTowardZero(t *testing.T) {
	m := newMemWallet(t, Wallet{OveragePolicy: PolicyBlock, AlertThresholds: []int{}})
	m.w.rule = &AutoTopup{WalletID: m.w.ID, Enabled: true, Threshold: *amt("5"), Amount: amt("20.004"),
		Kind: Paid, Payment: PaymentImmediate, MaxPerDay: 10}
	m.grant("10", 50, nil)
	m.debit("10")
	tp := m.settle(true) // credited now, owed on the invoice
	m.debit("0.009")     // from the top-up's grant: 19.995 left
	first := m.closeCycle()
	if len(first.Lines) != 1 || first.Lines[0].said() != "topup Auto top-up 2026-03-10: 1 × 20.004 = 20.004" ||
		first.Lines[0].TopupID == nil || *first.Lines[0].TopupID != tp.ID ||
		first.Total.String() != "20" || first.CarriedOut.String() != "0.004" {
		t.Fatalf("first invoice %+v", first)
	}
	void := &closeGrantOp{base: m.base(), grantID: *tp.GrantID}
	if code := m.b.Rejected(void); code != "" {
		t.Fatalf("void: %s", code)
	}
	m.tick(32 * 24 * time.Hour)
	second := m.closeCycle()
	// -19.995 + 0.004 = -19.991: credited -19.99, -0.001 carried.
	if len(second.Lines) != 1 || second.Lines[0].said() != "adjustment Voided top-up credits: 1 × -19.995 = -19.995" ||
		second.Total.String() != "-19.99" || second.CarriedOut.String() != "-0.001" || second.CarriedIn.String() != "0.004" {
		t.Fatalf("second invoice %+v", second)
	}
}
