package problem

import (
	"errors"
	"time"

	"github.com/creditledger/creditledger/billing"
	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

// The one table from the service's error vocabulary to the API's: each
// fault kind, and each code a refusal is recorded with, to a problem code
// (and through it, a status). A test checks that every kind and every
// refusal code the ledger and the wallets record has a row.
var (
	byKind = map[fault.Kind]Code{
		fault.Internal:     Internal,
		fault.Invalid:      Validation,
		fault.NotFound:     NotFound,
		fault.Exists:       Conflict,
		fault.Conflict:     Conflict,
		fault.Idempotency:  IdempotencyConflict,
		fault.Refused:      Conflict, // by code, below; a code with no row is a bug (500)
		fault.Retry:        Unavailable,
		fault.Unavailable:  Unavailable,
		fault.Unauthorized: Unauthorized,
		fault.Forbidden:    Forbidden,
	}
	// A refusal of a request's field names it: the capture that exceeds
	// its hold names the amount.
	byRefusal = map[string]struct {
		code  Code
		field string
	}{
		ledger.CodeOverdraft:           {Conflict, ""},
		ledger.CodeHoldNotFound:        {NotFound, ""},
		ledger.CodeHoldClosed:          {Conflict, ""},
		ledger.CodeHoldExceeded:        {Validation, "amount"},
		ledger.CodeInvalidData:         {Validation, ""},
		ledger.CodeLimitExceeded:       {Validation, ""},
		wallet.CodeInsufficientCredits: {InsufficientCredits, ""},
		wallet.CodeGrantClosed:         {Conflict, ""},
		wallet.CodeTopupClosed:         {Conflict, ""},
		billing.CodeSubscriptionExists: {Conflict, ""},
		billing.CodeSubscriptionEnded:  {Conflict, ""},
	}
)

// RetryAfter is what a client is told to wait after a 503.
const RetryAfter = 5 * time.Second

// From turns any error into the problem to answer it with. A *Error is
// itself; an error of the service's vocabulary (fault, or the database's
// errors through pg.KindOf) becomes the problem of its kind — the field it
// names, the refusal's code, its detail — with its cause kept for the log;
// anything else is a 500 whose cause is logged, never shown.
func From(err error) *Error {
	var p *Error
	if errors.As(err, &p) {
		return p
	}
	kind := pg.KindOf(err)
	fe, _ := fault.As(err)
	detail := ""
	if fe != nil {
		detail = fe.Detail
	}
	switch kind {
	case fault.Internal:
		return &Error{Code: Internal, Detail: "internal error; the request id identifies it in the server log", Cause: err}
	case fault.Unavailable, fault.Retry:
		return &Error{Code: Unavailable, Detail: "the service cannot reach its database right now; try again shortly",
			Cause: err, RetryAfter: RetryAfter}
	case fault.NotFound:
		// One detail for every 404: a portal token asking for another
		// customer's resource gets the same answer as for one that does
		// not exist, so ids cannot be probed.
		return &Error{Code: NotFound, Detail: "no such resource", Cause: err}
	case fault.Invalid:
		if fields := invalidFields(err); len(fields) > 0 {
			p := fields.problem()
			p.Cause = err
			return p
		}
	case fault.Refused:
		r, ok := byRefusal[fe.Code]
		if !ok {
			return &Error{Code: Internal, Detail: "internal error; the request id identifies it in the server log", Cause: err}
		}
		if detail == "" {
			detail = fe.Code
		}
		if r.code == NotFound {
			detail = "no such resource"
		}
		if r.field != "" {
			p := Invalid(r.field, detail)
			p.Cause = err
			return p
		}
		return &Error{Code: r.code, Detail: detail, Cause: err}
	}
	if detail == "" {
		detail = kind.String()
	}
	return &Error{Code: byKind[kind], Detail: detail, Cause: err}
}

// invalidFields lists the fields that the Invalid faults in err name, in
// order: one for a single fault; one per fault for several joined with
// errors.Join, so a domain package can refuse every wrong field of a
// request at once. A fault's own cause is not searched.
func invalidFields(err error) Fields {
	var out Fields
	var walk func(error)
	walk = func(err error) {
		var fe *fault.Error
		switch e := err.(type) {
		case nil:
			return
		case *fault.Error:
			fe = e
		case fault.Faulter:
			fe = e.Fault()
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
			return
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
			return
		default:
			return
		}
		if fe.Kind == fault.Invalid && fe.Field != "" {
			out.Add(fe.Field, fe.Detail)
		}
	}
	walk(err)
	return out
}
