// Package metering turns usage events into money: event validation, meters
// (count, sum, max, unique_count, latest, with filters and group-by), the
// running aggregate per customer, meter, dimensions and billing cycle, and
// the ingest path that NATS and HTTP share. Each event is one ledger
// operation: its aggregate moves from q0 to q1 and the customer's wallet is
// charged price(q1) − price(q0), in the same transaction.
package metering

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"github.com/creditledger/creditledger/internal/strictjson"
	"github.com/creditledger/creditledger/internal/text"
	"github.com/creditledger/creditledger/ledger"
)

// Event is one usage event as an app sends it.
type Event struct {
	EventID    string          `json:"event_id"`
	CustomerID string          `json:"customer_id"`
	EventName  string          `json:"event_name"`
	Timestamp  *time.Time      `json:"timestamp,omitempty"` // default: when it was received
	Properties json.RawMessage `json:"properties,omitempty"`

	sentTimestamp *time.Time // as sent, before defaulting: part of the fingerprint
}

// Limits on an event, so one event cannot cost unbounded work or storage.
const (
	MaxEventBytes    = 4 << 10 // × MaxBatchEvents fits the default request body limit
	MaxProperties    = 64
	MaxPropertyDepth = 4
	MaxFutureSkew    = 5 * time.Minute
)

var (
	idPattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$`)
	namePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.:-]{0,63}$`)
)

// EventRejection is an event that can never apply and why: what
// POST /v1/events lists under "rejected", and what event_rejections keeps
// (with the raw event). The refusal itself is a *ledger.Rejection, the one
// refusal type of every operation; a refused event is acknowledged, since
// sending it again unchanged would fail the same way, and it does not take
// its id.
type EventRejection struct {
	Index   *int   `json:"index,omitempty"` // the event's position in an ingest call
	EventID string `json:"event_id,omitempty"`
	Code    string `json:"code"`
	Detail  string `json:"detail"`
}

// Rejection codes.
const (
	CodeInvalidJSON      = "invalid_json"
	CodeInvalidEvent     = "invalid_event"
	CodeUnknownCustomer  = "unknown_customer"
	CodeNoMeter          = "no_meter"
	CodeNoWallet         = "no_wallet"
	CodeInvalidValue     = "invalid_value"
	CodeConflictingEvent = "conflicting_event" // an event id seen before with other content
	// CodeCustomerNotAllowed: the sender's key is bound to another customer.
	CodeCustomerNotAllowed = "customer_not_allowed"
	// CodeLimitExceeded: a quantity, a charge or a running total beyond
	// what the ledger carries (ledger.CodeLimitExceeded).
	CodeLimitExceeded = ledger.CodeLimitExceeded
	// CodeInvalidData: the database refused the event's data
	// (ledger.CodeInvalidData); the edge checks should have caught it.
	CodeInvalidData = ledger.CodeInvalidData
	// CodeParked: the event failed too often, for a reason nobody
	// classified, to go on retrying (see Service.Park).
	CodeParked = "parked"
)

// storableID is an event's id as a rejection can record it: "" when it is
// not storable text (a NUL, invalid UTF-8).
func storableID(id string) string {
	if text.Check("event_id", id, 128) != nil {
		return ""
	}
	return id
}

// properties is an event's properties, parsed once with numbers kept as
// their literal text (never float64).
type properties map[string]any

// ParseEvent decodes and validates one event, the same way for HTTP and
// NATS. received fills in a missing timestamp. The error is always a
// *ledger.Rejection. Decoding is strict (internal/strictjson): a key sent twice
// or in two spellings of case, at any depth, or a field name in another
// case, is refused rather than read as encoding/json would read it, and so
// is text PostgreSQL could not store, which would fail the batch the event
// is applied in.
func ParseEvent(raw []byte, received time.Time) (Event, properties, error) {
	if len(raw) > MaxEventBytes {
		return Event{}, nil, ledger.Reject(CodeInvalidEvent, "event is larger than %d bytes", MaxEventBytes)
	}
	if !utf8.Valid(raw) {
		return Event{}, nil, ledger.Reject(CodeInvalidEvent, "event is not valid UTF-8; JSON is UTF-8")
	}
	var e Event
	if err := strictjson.Unmarshal(raw, &e); err != nil {
		var strict *strictjson.Error
		switch {
		case errors.As(err, &strict):
			return Event{}, nil, ledger.Reject(CodeInvalidEvent, "%s", strict.Error())
		case errors.Is(err, strictjson.ErrTrailingData):
			return Event{}, nil, ledger.Reject(CodeInvalidJSON, "trailing data after the event")
		}
		code := CodeInvalidJSON
		if json.Valid(raw) {
			code = CodeInvalidEvent
		}
		return Event{}, nil, ledger.Reject(code, "%s", decodeDetail(err))
	}
	props, err := e.validate(received)
	if err != nil {
		return Event{}, nil, err
	}
	return e, props, nil
}

func (e *Event) validate(received time.Time) (properties, error) {
	bad := func(format string, args ...any) error { return ledger.Reject(CodeInvalidEvent, format, args...) }
	switch {
	case !idPattern.MatchString(e.EventID):
		return nil, bad("event_id: 1 to 128 characters: letters, digits and _ . : @ / -")
	case !idPattern.MatchString(e.CustomerID):
		return nil, bad("customer_id: 1 to 128 characters: letters, digits and _ . : @ / -")
	case !namePattern.MatchString(e.EventName):
		return nil, bad("event_name: 1 to 64 characters, starting with a letter: letters, digits and _ . : -")
	}
	e.sentTimestamp = e.Timestamp
	if e.Timestamp == nil {
		t := received
		e.Timestamp = &t
	}
	ts := e.Timestamp.UTC().Truncate(time.Microsecond)
	e.Timestamp = &ts
	if ts.After(received.Add(MaxFutureSkew)) {
		return nil, bad("timestamp %s is more than %s in the future", ts.Format(time.RFC3339), MaxFutureSkew)
	}
	if ts.Year() < 2000 {
		return nil, bad("timestamp %s is before 2000", ts.Format(time.RFC3339))
	}
	props := properties{}
	if len(e.Properties) > 0 && string(e.Properties) != "null" {
		var te *text.Error
		if errors.As(text.CheckJSON("properties", e.Properties, MaxEventBytes), &te) {
			return nil, bad("%s", te.Error())
		}
		dec := json.NewDecoder(bytes.NewReader(e.Properties))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, bad("properties: %v", err)
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, bad("properties must be a JSON object")
		}
		if len(obj) > MaxProperties {
			return nil, bad("properties: at most %d keys", MaxProperties)
		}
		if d := depth(obj); d > MaxPropertyDepth {
			return nil, bad("properties: nested %d deep, at most %d", d, MaxPropertyDepth)
		}
		props = obj
	} else {
		e.Properties = nil
	}
	return props, nil
}

func depth(v any) int {
	switch x := v.(type) {
	case map[string]any:
		d := 0
		for _, c := range x {
			d = max(d, depth(c))
		}
		return d + 1
	case []any:
		d := 0
		for _, c := range x {
			d = max(d, depth(c))
		}
		return d + 1
	}
	return 0
}

// guessID digs the event id out of an event that did not parse, so the
// rejection can name it. An id that is not text PostgreSQL stores is not
// guessed: the rejection is recorded without it rather than not at all.
func guessID(raw []byte) string {
	var probe struct {
		EventID string `json:"event_id"`
	}
	if json.Unmarshal(raw, &probe) == nil {
		if text.Check("event_id", probe.EventID, 128) != nil {
			return ""
		}
		return probe.EventID
	}
	// Broken JSON (a truncated publish) often still carries its id.
	if m := looseID.FindSubmatch(raw); m != nil {
		return string(m[1])
	}
	return ""
}

var looseID = regexp.MustCompile(`"event_id"\s*:\s*"([A-Za-z0-9_.:@/-]{1,128})"`)

// str is a property as the string meters filter and group by.
func (p properties) str(name string) (string, bool) {
	v, ok := p[name]
	if !ok || v == nil {
		return "", false
	}
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	}
	b, _ := json.Marshal(v)
	return string(b), true
}

// number is a property as an exact decimal: a JSON number or a numeric
// string, taken from its text so no float ever touches it.
func (p properties) number(name string) (decimal.Decimal, error) {
	v, ok := p[name]
	if !ok || v == nil {
		return decimal.Decimal{}, fmt.Errorf("property %q is missing", name)
	}
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	default:
		return decimal.Decimal{}, fmt.Errorf("property %q is not a number", name)
	}
	d, err := decimal.NewFromString(s)
	if err != nil || len(s) > 64 {
		return decimal.Decimal{}, fmt.Errorf("property %q is not a number", name)
	}
	return d, nil
}

// decodeDetail says what was wrong with an event in the event's own terms,
// not encoding/json's.
func decodeDetail(err error) string {
	var typeErr *json.UnmarshalTypeError
	var timeErr *time.ParseError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &timeErr):
		return "timestamp must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z"
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return typeErr.Field + " has the wrong JSON type"
	case errors.As(err, &typeErr):
		return "an event must be a JSON object with event_id, customer_id and event_name"
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("not valid JSON (at byte %d)", syntaxErr.Offset)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ") + "; an event has event_id, customer_id, event_name, timestamp and properties"
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return "not valid JSON (it ends too early)"
	}
	return "not a valid event"
}
