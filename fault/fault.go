// Package fault is the one vocabulary of what goes wrong, shared by every
// layer of the service: the kinds of error a caller can act on, and the
// Error that carries one with the field it names, its refusal code and its
// cause.
//
// Domain packages return *Error (or errors that report a Kind); transports
// map kinds to their own terms in one table (api/problem: a kind or a
// refusal code to an HTTP status and a problem code). Nothing here knows
// of HTTP, SQL or NATS: internal/pg classifies database errors into these
// kinds, so a poster, a consumer and a handler all decide the same way.
package fault

import (
	"context"
	"errors"
	"fmt"
)

// Kind is what went wrong, in terms a caller can act on.
type Kind uint8

const (
	// Internal is a bug, or a failure nobody classified. Not the caller's
	// doing; its cause is logged, never shown.
	Internal Kind = iota
	// Invalid: the request is wrong as sent — a field (Error.Field), or
	// data the database refused to store. Sending it again unchanged fails
	// the same way.
	Invalid
	// NotFound: no such resource (or one the caller may not see).
	NotFound
	// Exists: a resource with this identity exists already.
	Exists
	// Conflict: the resource's state refuses the request (already closed,
	// already paid).
	Conflict
	// Idempotency: an idempotency key was used before with another request.
	Idempotency
	// Refused: a business refusal of an operation, recorded in the journal
	// under its key; Error.Code says which (insufficient_credits, …).
	Refused
	// Retry: the database chose this transaction as the victim of a
	// serialization failure or deadlock; running it again succeeds. It
	// never leaves the ledger.
	Retry
	// Unavailable: a dependency (the database, the broker) cannot be
	// reached now, or the service is shutting down. Nothing is wrong with
	// the request: try again later.
	Unavailable
	// Unauthorized: no credentials, or ones that do not authenticate.
	Unauthorized
	// Forbidden: the credentials do not allow this.
	Forbidden
)

var kindNames = [...]string{
	Internal: "internal", Invalid: "invalid", NotFound: "not found", Exists: "exists", Conflict: "conflict",
	Idempotency: "idempotency conflict", Refused: "refused", Retry: "retry", Unavailable: "unavailable",
	Unauthorized: "unauthorized", Forbidden: "forbidden",
}

// Kinds lists every kind, for tables that must map each.
func Kinds() []Kind {
	out := make([]Kind, len(kindNames))
	for i := range kindNames {
		out[i] = Kind(i)
	}
	return out
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Error makes a Kind usable as a sentinel: errors.Is(err, fault.NotFound).
func (k Kind) Error() string { return k.String() }

// Error is an error of a known kind.
type Error struct {
	Kind Kind
	// Code is the stable code of a refusal or conflict (insufficient_credits,
	// hold_closed); empty otherwise.
	Code string
	// Field names what is wrong in an Invalid request: a JSON path
	// ("events.3.timestamp"), a query parameter or a header.
	Field string
	// Detail says what is wrong, for humans; it is shown to clients, so it
	// never carries internals.
	Detail string
	// Err is the cause: logged, never shown.
	Err error
}

func (e *Error) Error() string {
	var s string
	switch {
	case e.Field != "":
		s = e.Field + ": " + e.Detail
	case e.Detail != "":
		s = e.Detail
	default:
		s = e.Kind.String()
	}
	if e.Code != "" {
		s = e.Code + ": " + s
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap is the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, fault.NotFound) true for an Error of that kind.
func (e *Error) Is(target error) bool {
	k, ok := target.(Kind)
	return ok && k == e.Kind
}

// Faulter is implemented by errors of other types that can say what they
// are as a fault: the ledger's recorded Rejection, say, which keeps its own
// shape because it is stored with the operation it refused.
type Faulter interface {
	error
	Fault() *Error
}

// As finds the first *Error, or Faulter, in err's chain.
func As(err error) (*Error, bool) {
	var fe *Error
	var f Faulter
	switch {
	case err == nil:
		return nil, false
	case errors.As(err, &fe):
		return fe, true
	case errors.As(err, &f):
		return f.Fault(), true
	}
	return nil, false
}

// Of is the kind of err: that of the first *Error or Faulter in its chain,
// or a Kind itself; a cancelled or expired context is Unavailable (the
// caller or the service gave up waiting); anything else is Internal.
// Errors of the database are classified by internal/pg, which falls back
// on Of.
func Of(err error) Kind {
	if fe, ok := As(err); ok {
		return fe.Kind
	}
	var k Kind
	switch {
	case err == nil:
		return Internal
	case errors.As(err, &k):
		return k
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return Unavailable
	}
	return Internal
}

// New is an error of kind k saying detail.
func New(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Detail: fmt.Sprintf(format, args...)}
}

// Wrap is an error of kind k saying detail, with cause err.
func Wrap(k Kind, err error, format string, args ...any) error {
	return &Error{Kind: k, Detail: fmt.Sprintf(format, args...), Err: err}
}

// Invalidf is an Invalid error naming field.
func Invalidf(field, format string, args ...any) error {
	return &Error{Kind: Invalid, Field: field, Detail: fmt.Sprintf(format, args...)}
}

// NotFoundf is a NotFound error.
func NotFoundf(format string, args ...any) error {
	return &Error{Kind: NotFound, Detail: fmt.Sprintf(format, args...)}
}

// Existsf is an Exists error.
func Existsf(format string, args ...any) error {
	return &Error{Kind: Exists, Detail: fmt.Sprintf(format, args...)}
}

// Conflictf is a Conflict error with a code.
func Conflictf(code, format string, args ...any) error {
	return &Error{Kind: Conflict, Code: code, Detail: fmt.Sprintf(format, args...)}
}

// FieldOf is the field an Invalid error names, or "".
func FieldOf(err error) string {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}
