package billing

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/ledger"
)

func TestMoney(t *testing.T) {
	for _, tc := range []struct {
		amount string
		minor  int32
		want   string
	}{
		{"12.5", 2, "12.50"},
		{"12", 2, "12.00"},
		{"0", 2, "0.00"},
		{"-3.1", 2, "-3.10"},
		{"0.0117", 2, "0.0117"}, // exact digits finer than a cent are kept
		{"1234", 0, "1234"},
		{"1234.56", 0, "1234.56"},
		{"1.2", 3, "1.200"},
		{"1.230000", 2, "1.23"},
	} {
		if got := money(decimal.RequireFromString(tc.amount), tc.minor); got != tc.want {
			t.Errorf("money(%s, %d) = %q, want %q", tc.amount, tc.minor, got, tc.want)
		}
	}
}

// A line is sent with its type, and with kind for older clients.
func TestLineType(t *testing.T) {
	raw, err := json.Marshal(InvoiceLine{Kind: LineUsage, Description: "calls", Quantity: decimal.NewFromInt(3),
		UnitPrice: decimal.RequireFromString("0.5"), Amount: ledger.MustAmount("1.5")})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m["type"] != "usage" || m["kind"] != "usage" || m["amount"] != "1.5" || m["description"] != "calls" {
		t.Fatalf("line %s", raw)
	}
	var back InvoiceLine
	if err := json.Unmarshal(raw, &back); err != nil || back.Kind != LineUsage {
		t.Fatalf("decoded %+v %v", back, err)
	}
}

func TestRenderHTML(t *testing.T) {
	num, ref := "ACME-0007", "wire <42>"
	paid := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	inv := Invoice{ID: InvoiceID(uuid.New()), CustomerID: "acme", Currency: "JPY", MinorUnits: 0, Status: InvoicePaid,
		PeriodStart: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), PeriodEnd: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		CreatedAt: time.Date(2026, 3, 1, 0, 0, 1, 0, time.UTC),
		Lines: []InvoiceLine{{Kind: LineUsage, Description: "tokens (model=big)", Quantity: decimal.NewFromInt(5500),
			UnitPrice: decimal.RequireFromString("0.2"), Amount: ledger.MustAmount("1100")}},
		Subtotal: ledger.MustAmount("1100"), CarriedIn: ledger.MustAmount("0.4"), Total: ledger.MustAmount("1100"),
		CarriedOut:  ledger.MustAmount("0.4"),
		InvoiceLife: InvoiceLife{Number: &num, PaidAt: &paid, PaymentReference: &ref}}
	var b strings.Builder
	if err := renderHTML(&b, inv, "", "Acme & Co"); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"<title>Invoice ACME-0007</title>", DefaultSeller, "Acme &amp; Co", "acme", "status-paid",
		"2026-02-01 – 2026-03-01", "2026-03-02", "wire &lt;42&gt;", ">usage<", "tokens (model=big)", ">5500<", ">0.2<",
		">1100<", "1100 JPY", ">0.4<"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}
