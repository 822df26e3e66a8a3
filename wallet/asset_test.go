package wallet

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/ledger"
)

// uniqueAsset is an asset code no other test uses on the shared database.
func uniqueAsset(prefix string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(uuid.NewString()[:8], "-", ""))
}

// pricedAsset describes a fresh credits asset sold in USD at price.
func (w *world) pricedAsset(t *testing.T, price string) string {
	t.Helper()
	code := uniqueAsset("CR")
	if _, err := w.svc.PutAsset(context.Background(), code, NewAsset{Kind: AssetCredits, Currency: ptr("USD"), UnitPrice: amt(price)}); err != nil {
		t.Fatal(err)
	}
	return code
}

// walletIn makes a customer and a wallet in asset.
func (w *world) walletIn(t *testing.T, asset string, policy Policy) Wallet {
	t.Helper()
	ctx := context.Background()
	c, err := w.svc.CreateCustomer(ctx, Customer{Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	wl, err := w.svc.CreateWallet(ctx, NewWallet{CustomerID: c.ID, Asset: asset, OveragePolicy: policy})
	if err != nil {
		t.Fatal(err)
	}
	return wl
}

func TestMoney(t *testing.T) {
	for _, c := range []struct{ credits, price, want string }{
		{"500", "0.01", "5"},
		{"1.5", "0.003", "0.0045"},
		{"0.000001", "0.000001", "0.000000000001"},
		{"0.0000001", "0.000001", "0"},              // below the ledger's scale: half to even
		{"0.0000015", "0.000001", "0.000000000002"}, // 1.5e-12 → 2e-12
		{"-20", "0.25", "-5"},
	} {
		got, err := Money(decimal.RequireFromString(c.credits), decimal.RequireFromString(c.price))
		if err != nil || !got.Equal(ledger.MustAmount(c.want)) {
			t.Errorf("Money(%s, %s) = %s %v, want %s", c.credits, c.price, got, err, c.want)
		}
	}
}

func TestPutAssetValidation(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	credits := uniqueAsset("CR")
	if _, err := w.svc.PutAsset(ctx, credits, NewAsset{Kind: AssetCredits}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		code  string
		req   NewAsset
		field string // "" : a conflict
	}{
		{"bad code", "credits", NewAsset{Kind: AssetCredits}, "code"},
		{"bad kind", uniqueAsset("X"), NewAsset{Kind: "points"}, "kind"},
		{"unit price on a currency", "EUR", NewAsset{Kind: AssetCurrency, UnitPrice: amt("1")}, "unit_price"},
		{"currency code of a currency", "EURO", NewAsset{Kind: AssetCurrency}, "code"},
		{"currency not a code", uniqueAsset("X"), NewAsset{Kind: AssetCredits, Currency: ptr("usd"), UnitPrice: amt("1")}, "currency"},
		{"currency is credits", uniqueAsset("X"), NewAsset{Kind: AssetCredits, Currency: ptr("GEM"), UnitPrice: amt("1")}, "currency"},
		{"sold in itself", "ABC", NewAsset{Kind: AssetCredits, Currency: ptr("ABC"), UnitPrice: amt("1")}, "currency"},
		{"zero price", uniqueAsset("X"), NewAsset{Kind: AssetCredits, Currency: ptr("USD"), UnitPrice: amt("0")}, "unit_price"},
		{"negative price", uniqueAsset("X"), NewAsset{Kind: AssetCredits, Currency: ptr("USD"), UnitPrice: amt("-0.01")}, "unit_price"},
		{"price without currency", uniqueAsset("X"), NewAsset{Kind: AssetCredits, UnitPrice: amt("0.01")}, "currency"},
		{"kind change", "GEM", NewAsset{Kind: AssetCurrency}, ""},
	}
	// A three-letter credits asset, so "currency is credits" names one.
	if _, err := w.svc.PutAsset(ctx, "GEM", NewAsset{Kind: AssetCredits}); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := w.svc.PutAsset(ctx, c.code, c.req)
			if c.field == "" {
				if !errors.Is(err, fault.Conflict) {
					t.Fatalf("got %v, want a conflict", err)
				}
				return
			}
			if !errors.Is(err, fault.Invalid) || fault.FieldOf(err) != c.field {
				t.Fatalf("got %v (field %q), want invalid %s", err, fault.FieldOf(err), c.field)
			}
		})
	}
}

// A new price applies from the PUT on; the history keeps the old one for
// instants before, and a price is never removed.
func TestAssetRateHistory(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	code := w.pricedAsset(t, "0.01")
	t0 := w.clock.Now()
	w.clock.Advance(time.Hour)
	a, err := w.svc.PutAsset(ctx, code, NewAsset{Kind: AssetCredits, Currency: ptr("USD"), UnitPrice: amt("0.02"), Name: "Gems"})
	if err != nil || a.UnitPrice.String() != "0.02" || a.Name != "Gems" || !a.UpdatedAt.After(a.CreatedAt) {
		t.Fatalf("put: %+v %v", a, err)
	}
	for _, c := range []struct {
		at   time.Time
		want string
	}{{t0.Add(-time.Second), ""}, {t0, "0.01"}, {t0.Add(30 * time.Minute), "0.01"}, {w.clock.Now(), "0.02"}} {
		p, ok, err := w.svc.RateAt(ctx, code, c.at)
		if err != nil || ok != (c.want != "") || (ok && p.String() != c.want) {
			t.Errorf("rate at %s: %s %v %v, want %q", c.at, p, ok, err, c.want)
		}
	}
	if _, err := w.svc.PutAsset(ctx, code, NewAsset{Kind: AssetCredits}); fault.FieldOf(err) != "unit_price" {
		t.Fatalf("removing the price: %v", err)
	}
	if _, err := w.svc.PutAsset(ctx, code, NewAsset{Kind: AssetCredits, Currency: ptr("EUR"), UnitPrice: amt("0.02")}); !errors.Is(err, fault.Conflict) {
		t.Fatalf("changing the currency: %v", err)
	}
	var n int
	if err := w.db.Pool.QueryRow(ctx, `SELECT count(*) FROM asset_rates WHERE asset = $1`, code).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d rates (%v), want 2", n, err)
	}
	// Currencies get ISO 4217 minor units unless told.
	if a, err := w.svc.PutAsset(ctx, "JPY", NewAsset{Kind: AssetCurrency}); err != nil || a.MinorUnits == nil || *a.MinorUnits != 0 {
		t.Fatalf("JPY: %+v %v", a, err)
	}
	if mu, err := w.svc.MinorUnitsOf(ctx, "KWD"); err != nil || mu != 3 {
		t.Fatalf("KWD minor units %d %v", mu, err)
	}
}

// A top-up of priced credits carries its price in money and the currency,
// in the resource and in topup.requested; its paid grant's cost basis is
// that price. A paid grant's cost basis defaults to its amount at the unit
// price.
func TestPricedTopupAndCostBasis(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	code := w.pricedAsset(t, "0.01")
	wl := w.walletIn(t, code, PolicyBlock)
	g := w.grant(t, wl.ID, "100", 50, nil, nil)
	if g.CostBasis == nil || g.CostBasis.String() != "1" {
		t.Fatalf("grant cost basis %v, want 1", g.CostBasis)
	}
	given, _, err := ledger.Unpack(w.svc.AddGrant(ctx, "", wl.ID, NewGrant{Amount: ledger.MustAmount("1"), Kind: Paid, CostBasis: amt("0")}))
	if err != nil || given.CostBasis == nil || !given.CostBasis.IsZero() {
		t.Fatalf("given cost basis kept: %+v %v", given.CostBasis, err)
	}
	promo, _, err := ledger.Unpack(w.svc.AddGrant(ctx, "", wl.ID, NewGrant{Amount: ledger.MustAmount("1"), Kind: Promotional}))
	if err != nil || promo.CostBasis != nil {
		t.Fatalf("promotional cost basis %v %v", promo.CostBasis, err)
	}
	w.rule(t, wl.ID, NewAutoTopup{Threshold: amt("50"), Amount: amt("250")})
	w.mustDebit(t, wl.ID, "60")
	ts := w.topups(t, wl.ID)
	if len(ts) != 1 || ts[0].Price == nil || ts[0].Price.String() != "2.5" || ts[0].Currency == nil || *ts[0].Currency != "USD" {
		t.Fatalf("top-ups %+v", ts)
	}
	ev := w.events(t, wl.ID, TopicTopupRequested)
	if len(ev) != 1 || ev[0].Data["price"] != "2.5" || ev[0].Data["currency"] != "USD" {
		t.Fatalf("topup.requested %+v", ev)
	}
	got, _, err := ledger.Unpack(w.svc.ConfirmTopup(ctx, ts[0].ID))
	if err != nil || got.GrantID == nil {
		t.Fatalf("confirm %+v %v", got, err)
	}
	tg, err := w.svc.GrantByID(ctx, *got.GrantID)
	if err != nil || tg.CostBasis == nil || tg.CostBasis.String() != "2.5" {
		t.Fatalf("top-up grant %+v %v", tg, err)
	}
}

// Unpriced credits' top-ups carry no price, and grants no cost basis.
func TestUnpricedTopupHasNoPrice(t *testing.T) {
	w := newWorld(t)
	wl := w.wallet(t, PolicyBlock, "")
	g := w.grant(t, wl.ID, "100", 50, nil, nil)
	w.rule(t, wl.ID, NewAutoTopup{Threshold: amt("50"), Amount: amt("100")})
	w.mustDebit(t, wl.ID, "60")
	ts := w.topups(t, wl.ID)
	if g.CostBasis != nil || len(ts) != 1 || ts[0].Price != nil || ts[0].Currency != nil {
		t.Fatalf("grant %+v top-ups %+v", g.CostBasis, ts)
	}
	ev := w.events(t, wl.ID, TopicTopupRequested)
	if _, has := ev[0].Data["price"]; has {
		t.Fatalf("topup.requested %+v", ev[0].Data)
	}
}
