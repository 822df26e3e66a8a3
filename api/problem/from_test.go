package problem

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

// Every kind of the vocabulary, and every code a refusal is recorded with,
// has a row: an unknown one would be answered as a bug.
func TestEveryKindAndRefusalIsMapped(t *testing.T) {
	for _, k := range fault.Kinds() {
		if _, ok := byKind[k]; !ok {
			t.Errorf("fault kind %q has no problem code", k)
		}
	}
	for _, code := range append(ledger.RejectionCodes(), wallet.RejectionCodes()...) {
		r, ok := byRefusal[code]
		if !ok {
			t.Errorf("refusal %q has no problem code", code)
			continue
		}
		if s := r.code.Status(); s < 400 || s >= 500 {
			t.Errorf("refusal %q answers %d; a refusal is the client's to resolve (4xx)", code, s)
		}
	}
}

func TestFrom(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   Code
		field  string
	}{
		{"a problem", New(Conflict, "taken"), 409, Conflict, ""},
		{"invalid field", fmt.Errorf("debit: %w", fault.Invalidf("amount", "must be positive")), 422, Validation, "amount"},
		{"not found", fault.NotFoundf("wallet %s", "w"), 404, NotFound, ""},
		{"exists", fault.Existsf("customer exists"), 409, Conflict, ""},
		{"idempotency", fmt.Errorf("submit: %w", ledger.ErrIdempotencyConflict), 409, IdempotencyConflict, ""},
		{"refused for credits", ledger.Reject(wallet.CodeInsufficientCredits, "10 needed, 2 available"), 402, InsufficientCredits, ""},
		{"refused, hold closed", ledger.Reject(ledger.CodeHoldClosed, "captured"), 409, Conflict, ""},
		{"refused, limit", ledger.Reject(ledger.CodeLimitExceeded, "too much"), 422, Validation, ""},
		{"refused, capture beyond the hold", ledger.Reject(ledger.CodeHoldExceeded, "11 of 10"), 422, Validation, "amount"},
		{"refused with an unknown code", ledger.Reject("surprise", "?"), 500, Internal, ""},
		{"database down", fmt.Errorf("balance: %w", &pgconn.PgError{Code: "57P01"}), 503, Unavailable, ""},
		{"poster closed", ledger.ErrClosed, 503, Unavailable, ""},
		{"a bug", errors.New("nil map"), 500, Internal, ""},
	} {
		p := From(tc.err)
		if p.HTTPStatus() != tc.status || p.Code != tc.code {
			t.Errorf("%s: From(%v) = %d %s, want %d %s", tc.name, tc.err, p.HTTPStatus(), p.Code, tc.status, tc.code)
		}
		if tc.field != "" && (len(p.Fields) != 1 || p.Fields[0].Field != tc.field) {
			t.Errorf("%s: fields %v, want %s", tc.name, p.Fields, tc.field)
		}
		if p.Code == Unavailable && p.RetryAfter == 0 {
			t.Errorf("%s: 503 without Retry-After", tc.name)
		}
		if tc.status >= 500 && p.Detail == tc.err.Error() {
			t.Errorf("%s: a server fault shows its cause %q", tc.name, p.Detail)
		}
	}
	if got := From(fault.NotFoundf("wallet 123 of customer acme")).Detail; got != "no such resource" {
		t.Errorf("a 404 says %q; every 404 says the same, so ids cannot be probed", got)
	}
}

// Invalid faults joined with errors.Join are one validation_error listing
// every field, as Fields.Err lists them.
func TestFromJoinedFields(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		detail string
		fields []FieldError
	}{
		{"one", fault.Invalidf("scope", "is required"), "scope: is required", []FieldError{{"scope", "is required"}}},
		{"one joined", errors.Join(fault.Invalidf("name", "too long")), "name: too long", []FieldError{{"name", "too long"}}},
		{
			"several, wrapped",
			fmt.Errorf("create key: %w", errors.Join(fault.Invalidf("scope", "is required"), nil,
				fmt.Errorf("lifetime: %w", fault.Invalidf("expires_in_seconds", "must be from 1 to 60")))),
			"invalid fields: scope, expires_in_seconds",
			[]FieldError{{"scope", "is required"}, {"expires_in_seconds", "must be from 1 to 60"}},
		},
		{
			"a fault's cause is not searched",
			&fault.Error{Kind: fault.Invalid, Field: "url", Detail: "is wrong", Err: fault.Invalidf("host", "inner")},
			"url: is wrong",
			[]FieldError{{"url", "is wrong"}},
		},
	} {
		p := From(tc.err)
		if p.HTTPStatus() != 422 || p.Code != Validation || p.Detail != tc.detail || !slices.Equal(p.Fields, tc.fields) {
			t.Errorf("%s: From = %d %s %q %v, want 422 %q %v", tc.name, p.HTTPStatus(), p.Code, p.Detail, p.Fields, tc.detail, tc.fields)
		}
		if !errors.Is(p, fault.Invalid) {
			t.Errorf("%s: the problem does not keep its cause", tc.name)
		}
	}
}
