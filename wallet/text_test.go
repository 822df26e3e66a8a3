package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/ledger"
)

// Text PostgreSQL cannot store is refused with a validation error naming
// the field, before it reaches a batch it would fail whole.
func TestTextIsValidated(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	wl := w.wallet(t, PolicyAllow, "")
	one := ledger.MustAmount("1")
	customer := func(c Customer) func() error {
		return func() error { _, err := w.svc.CreateCustomer(ctx, c); return err }
	}
	grant := func(g NewGrant) func() error {
		g.Amount, g.Kind = one, Paid
		return func() error { _, _, err := ledger.Unpack(w.svc.AddGrant(ctx, "", wl.ID, g)); return err }
	}
	debit := func(d NewDebit) func() error {
		d.Amount = one
		return func() error { _, _, err := ledger.Unpack(w.svc.Debit(ctx, "", wl.ID, d)); return err }
	}
	hold := func(h NewHold) func() error {
		h.Amount = one
		return func() error { _, _, err := ledger.Unpack(w.svc.PlaceHold(ctx, "", wl.ID, h)); return err }
	}
	meta := func(s string) json.RawMessage { return json.RawMessage(s) }
	long := strings.Repeat("x", 501)
	for _, tc := range []struct {
		name  string
		call  func() error
		field string
	}{
		{"customer id with NUL", customer(Customer{ID: "a\x00b"}), "id"},
		{"customer name with NUL", customer(Customer{Name: "Acme\x00"}), "name"},
		{"customer name with escape", customer(Customer{Name: "Acme\x1b[2J"}), "name"},
		{"customer name not UTF-8", customer(Customer{Name: "Acme \xff"}), "name"},
		{"customer name too long", customer(Customer{Name: strings.Repeat("é", 101)}), "name"},
		{"customer email with NUL", customer(Customer{Email: "a@b\x00"}), "email"},
		{"customer email not UTF-8", customer(Customer{Email: "a@\xc3"}), "email"},
		{"customer email too long", customer(Customer{Email: strings.Repeat("a", 250) + "@b.co"}), "email"},
		{"customer metadata with NUL", customer(Customer{Metadata: meta(`{"a":"\u0000"}`)}), "metadata"},
		{"customer metadata key with NUL", customer(Customer{Metadata: meta(`{"\u0000":1}`)}), "metadata"},
		{"customer metadata with a lone surrogate", customer(Customer{Metadata: meta(`{"a":"\udc00"}`)}), "metadata"},
		{"customer metadata not UTF-8", customer(Customer{Metadata: meta("{\"a\":\"\xff\"}")}), "metadata"},
		{"customer metadata with a number NUMERIC cannot hold", customer(Customer{Metadata: meta(`{"a":1e-20000}`)}), "metadata"},
		{"customer metadata too long", customer(Customer{Metadata: meta(`{"a":"` + strings.Repeat("x", 16<<10) + `"}`)}), "metadata"},
		{"wallet for a customer id with NUL", func() error {
			_, err := w.svc.CreateWallet(ctx, NewWallet{CustomerID: "c\x00", Asset: "CREDITS"})
			return err
		}, "customer_id"},

		{"grant description with NUL", grant(NewGrant{Description: "promo\x00"}), "description"},
		{"grant description not UTF-8", grant(NewGrant{Description: "promo \xfe"}), "description"},
		{"grant description too long", grant(NewGrant{Description: long}), "description"},
		{"grant metadata with NUL", grant(NewGrant{Metadata: meta(`{"order":"o\u0000"}`)}), "metadata"},
		{"debit description with NUL", debit(NewDebit{Description: "a\x00b"}), "description"},
		{"debit description not UTF-8", debit(NewDebit{Description: "\xff"}), "description"},
		{"debit description too long", debit(NewDebit{Description: long}), "description"},
		{"debit metadata with NUL", debit(NewDebit{Metadata: meta(`{"a":["\u0000"]}`)}), "metadata"},
		{"debit metadata with a lone surrogate", debit(NewDebit{Metadata: meta(`{"a":"\ud800x"}`)}), "metadata"},
		{"hold metadata with NUL", hold(NewHold{Metadata: meta(`{"job":"\u0000"}`)}), "metadata"},
		{"hold metadata not UTF-8", hold(NewHold{Metadata: meta("{\"job\":\"\xc3\"}")}), "metadata"},
		{"top-up failure reason with NUL", func() error {
			_, _, err := ledger.Unpack(w.svc.FailTopup(ctx, TopupID(uuid.New()), "card declined\x00"))
			return err
		}, "reason"},
		{"top-up failure reason too long", func() error {
			_, _, err := ledger.Unpack(w.svc.FailTopup(ctx, TopupID(uuid.New()), long))
			return err
		}, "reason"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, fault.Invalid) || fault.FieldOf(err) != tc.field {
				t.Fatalf("err = %v, want a validation error on %s", err, tc.field)
			}
		})
	}
	// Text that is fine is kept as sent.
	c, err := w.svc.CreateCustomer(ctx, Customer{Name: "Café\tAcme\r\n東京", Metadata: meta(`{"tier":"gold","n":1e3,"s":"\ud83d\ude00"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "Café\tAcme\r\n東京" {
		t.Fatalf("name stored as %q", c.Name)
	}
	// Lookups by an id no customer can have answer not found, not a
	// database error.
	if _, err := w.svc.Customer(ctx, "a\x00b"); !errors.Is(err, fault.NotFound) {
		t.Fatalf("customer with NUL id: %v", err)
	}
	if ok, err := w.svc.CustomerExists(ctx, "\xff"); ok || err != nil {
		t.Fatalf("CustomerExists(invalid UTF-8) = %v, %v", ok, err)
	}
	b := w.balanceOf(t, wl.ID)
	if !b.Granted.IsZero() || !b.Consumed.IsZero() || !b.Held.IsZero() {
		t.Fatalf("refused calls moved money: %+v", b)
	}
}

func (w *world) balanceOf(t *testing.T, id WalletID) Balance {
	t.Helper()
	b, err := w.svc.Balance(context.Background(), id, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
