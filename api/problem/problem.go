// Package problem is the API's error format: RFC 7807 problem details,
// sent as application/problem+json, each with a stable machine-readable code.
//
// Handlers return a *Error, or an error of the service's vocabulary
// (package fault) that From turns into one; the API's Fiber error handler
// writes it. Any other error becomes a 500 "internal" problem whose detail
// says nothing of the cause, so SQL, stack traces and wrapped driver
// messages never reach a client.
package problem

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// ContentType is the media type of every error response.
const ContentType = "application/problem+json"

// TypeBase prefixes a code to make the problem's "type" URI.
const TypeBase = "https://docs.creditledger.dev/errors/"

// Code is a stable, documented error code. Clients switch on it; the title
// and detail are for humans and may change.
type Code string

const (
	Validation          Code = "validation_error"     // 422: the request is well-formed but a field is wrong
	BadRequest          Code = "bad_request"          // 400: malformed JSON or HTTP
	Unauthorized        Code = "unauthorized"         // 401: missing or unknown API key
	Forbidden           Code = "forbidden"            // 403: the key's scope does not allow this
	NotFound            Code = "not_found"            // 404
	MethodNotAllowed    Code = "method_not_allowed"   // 405
	Conflict            Code = "conflict"             // 409: e.g. a second wallet for the same customer and asset
	IdempotencyConflict Code = "idempotency_conflict" // 409: Idempotency-Key reused with a different body
	InsufficientCredits Code = "insufficient_credits" // 402
	PayloadTooLarge     Code = "payload_too_large"    // 413
	RateLimited         Code = "rate_limited"         // 429
	Internal            Code = "internal"             // 500: details are in the server log, under the request id
	Unavailable         Code = "unavailable"          // 503: a dependency (database, NATS) is down

	// 415: a request body sent as anything but Content-Type: application/json.
	UnsupportedMediaType Code = "unsupported_media_type"
)

var codes = map[Code]struct {
	status int
	title  string
}{
	Validation:          {http.StatusUnprocessableEntity, "Validation failed"},
	BadRequest:          {http.StatusBadRequest, "Bad request"},
	Unauthorized:        {http.StatusUnauthorized, "Unauthorized"},
	Forbidden:           {http.StatusForbidden, "Forbidden"},
	NotFound:            {http.StatusNotFound, "Not found"},
	MethodNotAllowed:    {http.StatusMethodNotAllowed, "Method not allowed"},
	Conflict:            {http.StatusConflict, "Conflict"},
	IdempotencyConflict: {http.StatusConflict, "Idempotency key reused"},
	InsufficientCredits: {http.StatusPaymentRequired, "Insufficient credits"},
	PayloadTooLarge:     {http.StatusRequestEntityTooLarge, "Payload too large"},
	RateLimited:         {http.StatusTooManyRequests, "Rate limited"},
	Internal:            {http.StatusInternalServerError, "Internal error"},
	Unavailable:         {http.StatusServiceUnavailable, "Service unavailable"},

	UnsupportedMediaType: {http.StatusUnsupportedMediaType, "Unsupported media type"},
}

// Status is the HTTP status the code is normally sent with (500 for a code
// this package does not know).
func (c Code) Status() int {
	if d, ok := codes[c]; ok {
		return d.status
	}
	return http.StatusInternalServerError
}

// Title is the code's short human-readable summary.
func (c Code) Title() string {
	if d, ok := codes[c]; ok {
		return d.title
	}
	return http.StatusText(c.Status())
}

// Type is the URI that documents the code.
func (c Code) Type() string { return TypeBase + string(c) }

// FieldError says what is wrong with one field of a request. Field is a
// dotted JSON path ("events.3.timestamp") or a query parameter name.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// Error is a problem to send to the client. Everything in it is shown to the
// client: never put an underlying error's text in Detail.
type Error struct {
	Code   Code
	Status int // 0 means Code.Status(); set it to send validation_error as 400, say
	Detail string
	Fields []FieldError
	// Cause is why the server answered so (a database that cannot be
	// reached): logged under the request id, never sent.
	Cause error
	// RetryAfter, if positive, is sent as the Retry-After header: when a
	// client should try again (503, 429).
	RetryAfter time.Duration
}

// Unwrap is the cause, so errors.Is and errors.As see through a problem.
func (e *Error) Unwrap() error { return e.Cause }

// New returns a problem with the code's usual status.
func New(code Code, detail string) *Error {
	return &Error{Code: code, Detail: detail}
}

// Newf is New with a formatted detail.
func Newf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Invalid is a validation_error about one field.
func Invalid(field, detail string) *Error {
	return &Error{Code: Validation, Detail: field + ": " + detail, Fields: []FieldError{{field, detail}}}
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + e.Detail
}

// HTTPStatus is the status the problem is sent with.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	return e.Code.Status()
}

// Fields collects validation errors so a handler can report all of them at
// once:
//
//	var bad problem.Fields
//	if req.Scope == "" {
//		bad.Add("scope", "is required")
//	}
//	if err := bad.Err(); err != nil {
//		return err
//	}
type Fields []FieldError

// Add records that field is wrong.
func (f *Fields) Add(field, detail string) { *f = append(*f, FieldError{field, detail}) }

// Err is a validation_error listing the fields, or nil if there are none.
func (f Fields) Err() error {
	if len(f) == 0 {
		return nil
	}
	return f.problem()
}

// problem is the validation_error listing f, which is not empty.
func (f Fields) problem() *Error {
	detail := f[0].Field + ": " + f[0].Detail
	if len(f) > 1 {
		names := make([]string, len(f))
		for i, fe := range f {
			names[i] = fe.Field
		}
		detail = "invalid fields: " + strings.Join(names, ", ")
	}
	return &Error{Code: Validation, Detail: detail, Fields: append([]FieldError(nil), f...)}
}

// body is the wire form. request_id is an RFC 7807 extension member: the
// string to quote to an operator, who finds the cause in the server log.
type body struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail"`
	Code      Code         `json:"code"`
	Errors    []FieldError `json:"errors,omitempty"`
	RequestID string       `json:"request_id,omitempty"`
}

// Write sends e as the response.
func Write(c *fiber.Ctx, e *Error, requestID string) error {
	status := e.HTTPStatus()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "Bearer <key>", not "Bearer \u003ckey\u003e"
	err := enc.Encode(body{
		Type:      e.Code.Type(),
		Title:     e.Code.Title(),
		Status:    status,
		Detail:    e.Detail,
		Code:      e.Code,
		Errors:    e.Fields,
		RequestID: requestID,
	})
	if err != nil {
		return err
	}
	c.Status(status)
	c.Set(fiber.HeaderContentType, ContentType)
	if e.RetryAfter > 0 {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(max(e.RetryAfter.Round(time.Second), time.Second)/time.Second)))
	}
	return c.Send(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}
