package fault

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

type recorded struct{ code string }

func (r recorded) Error() string { return r.code }
func (r recorded) Fault() *Error { return &Error{Kind: Refused, Code: r.code} }

func TestOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want Kind
	}{
		{"nil", nil, Internal},
		{"plain", errors.New("boom"), Internal},
		{"field", Invalidf("amount", "must be positive"), Invalid},
		{"wrapped", fmt.Errorf("debit: %w", NotFoundf("wallet %s", "w")), NotFound},
		{"a kind itself", fmt.Errorf("close: %w", Unavailable), Unavailable},
		{"faulter", fmt.Errorf("op: %w", recorded{"insufficient_credits"}), Refused},
		{"cancelled", fmt.Errorf("wait: %w", context.Canceled), Unavailable},
		{"deadline", context.DeadlineExceeded, Unavailable},
		{"cause inside", Wrap(Exists, errors.New("23505"), "customer %q exists", "acme"), Exists},
	} {
		if got := Of(tc.err); got != tc.want {
			t.Errorf("%s: Of(%v) = %s, want %s", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestIsAndText(t *testing.T) {
	err := fmt.Errorf("create wallet: %w", Invalidf("customer_id", "no customer %q", "acme"))
	if !errors.Is(err, Invalid) || errors.Is(err, NotFound) {
		t.Fatalf("errors.Is against kinds: %v", err)
	}
	if got := FieldOf(err); got != "customer_id" {
		t.Fatalf("FieldOf = %q", got)
	}
	if got, want := err.Error(), `create wallet: customer_id: no customer "acme"`; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	c := Conflictf("hold_closed", "hold %s is captured", "h")
	if got, want := c.Error(), "hold_closed: hold h is captured"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	cause := errors.New("connection refused")
	if !errors.Is(Wrap(Unavailable, cause, "database"), cause) {
		t.Fatal("the cause is not reachable through Unwrap")
	}
}

func TestEveryKindIsNamed(t *testing.T) {
	for _, k := range Kinds() {
		if k.String() == "" || k.String() == fmt.Sprintf("Kind(%d)", uint8(k)) {
			t.Errorf("kind %d has no name", k)
		}
	}
}
