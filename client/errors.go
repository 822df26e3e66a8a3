package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Error is an answer of the ledger outside 2xx: its RFC 9457 problem
// document. Code is the problem's stable code ("insufficient_credits",
// "validation_failed", ...); Fields names the fields a 422 complains of.
type Error struct {
	Status     int
	Code       string
	Title      string
	Detail     string
	Fields     []FieldError
	RequestID  string
	RetryAfter time.Duration // from a Retry-After header; 0 when none
}

// FieldError is one field a 422 answer names.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ledger: %d", e.Status)
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, ": %s", e.Detail)
	}
	for _, f := range e.Fields {
		fmt.Fprintf(&b, "; %s: %s", f.Field, f.Detail)
	}
	return b.String()
}

func newError(resp *http.Response, body []byte) *Error {
	var p struct {
		Title     string       `json:"title"`
		Detail    string       `json:"detail"`
		Code      string       `json:"code"`
		Errors    []FieldError `json:"errors"`
		RequestID string       `json:"request_id"`
	}
	e := &Error{Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"))}
	if json.Unmarshal(body, &p) == nil {
		e.Code, e.Title, e.Detail, e.Fields, e.RequestID = p.Code, p.Title, p.Detail, p.Errors, p.RequestID
	}
	if e.Detail == "" && e.Title == "" {
		e.Detail = strings.TrimSpace(string(body))
		if len(e.Detail) > 200 {
			e.Detail = e.Detail[:200]
		}
	}
	return e
}

func statusIs(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// IsInsufficientCredits reports whether err is a 402: the wallet cannot
// pay and its overage policy does not allow the rest.
func IsInsufficientCredits(err error) bool { return statusIs(err, http.StatusPaymentRequired) }

// IsConflict reports whether err is a 409: the resource exists, or the
// Idempotency-Key was used before with another request.
func IsConflict(err error) bool { return statusIs(err, http.StatusConflict) }

// IsValidation reports whether err is a 422; the *Error's Fields say which
// fields were wrong.
func IsValidation(err error) bool { return statusIs(err, http.StatusUnprocessableEntity) }

// IsNotFound reports whether err is a 404.
func IsNotFound(err error) bool { return statusIs(err, http.StatusNotFound) }
