package metering

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/internal/strictjson"
	"github.com/creditledger/creditledger/internal/text"
	"github.com/creditledger/creditledger/ledger"
	"github.com/shopspring/decimal"
)

// IngestOptions say where a call's events come from and who may send them.
type IngestOptions struct {
	Source string // "http", "nats": recorded with each event and rejection
	// Customer, if set, is the only customer the sender may send events
	// for (an ingest key bound to one customer); an event naming another
	// is rejected with CodeCustomerNotAllowed.
	Customer string
	// CloudEvent, if set, says which of the call's raw events are
	// CloudEvents (ParseCloudEvent) rather than native events.
	CloudEvent func(i int) bool
}

// EventStatus is what became of one event of an ingest call.
type EventStatus int

const (
	// EventAccepted: applied now.
	EventAccepted EventStatus = iota + 1
	// EventDuplicate: applied before (its id is in the journal).
	EventDuplicate
	// EventRejected: refused for good, with the reason recorded in
	// event_rejections. Sending it again unchanged fails the same way.
	EventRejected
	// EventFailed: neither applied nor refused, because the database could
	// not take it (pg.KindOf(Err) says whether it was unreachable or
	// an error nobody classified). Send it again.
	EventFailed
)

func (s EventStatus) String() string {
	switch s {
	case EventAccepted:
		return "accepted"
	case EventDuplicate:
		return "duplicate"
	case EventRejected:
		return "rejected"
	case EventFailed:
		return "failed"
	}
	return fmt.Sprintf("EventStatus(%d)", int(s))
}

// EventResult is one event's outcome.
type EventResult struct {
	Status    EventStatus
	Rejection *EventRejection // with EventRejected
	Err       error           // with EventFailed
}

// IngestResult is what an ingest call did with its events, as POST
// /v1/events answers it.
type IngestResult struct {
	Accepted   int              `json:"accepted"`
	Duplicates int              `json:"duplicates"`
	Rejected   []EventRejection `json:"rejected"`
}

// Ingest applies a batch of raw events and sums up what became of them. An
// error means some events could be neither applied nor refused (the
// database could not take them): the caller sends the whole batch again,
// which is safe, since applied events come back as duplicates.
func (s *Service) Ingest(ctx context.Context, raws []json.RawMessage, opts IngestOptions) (IngestResult, error) {
	each, err := s.IngestEach(ctx, raws, opts)
	if err != nil {
		return IngestResult{}, err
	}
	res := IngestResult{Rejected: []EventRejection{}}
	var failed error
	for _, r := range each {
		switch r.Status {
		case EventAccepted:
			res.Accepted++
		case EventDuplicate:
			res.Duplicates++
		case EventRejected:
			res.Rejected = append(res.Rejected, *r.Rejection)
		case EventFailed:
			if failed == nil || pg.KindOf(r.Err) == fault.Unavailable {
				failed = r.Err
			}
		}
	}
	if failed != nil {
		return res, fmt.Errorf("ingest: %w", failed)
	}
	sort.SliceStable(res.Rejected, func(i, j int) bool { return *res.Rejected[i].Index < *res.Rejected[j].Index })
	return res, nil
}

// IngestEach applies a batch of raw events, the same way for HTTP and NATS,
// and returns one result per event, in order. Each event is accepted, a
// duplicate, rejected with a reason that is recorded (once, however often
// the same event is sent again), or failed. One event's fate never decides
// another's: a bad event is refused alone, whatever the ledger found wrong
// with it. The error is for a call that could not start at all.
func (s *Service) IngestEach(ctx context.Context, raws []json.RawMessage, opts IngestOptions) ([]EventResult, error) {
	received := s.l.Now()
	out := make([]EventResult, len(raws))
	type item struct {
		op    *usageOp
		p     *ledger.Pending
		index int
	}
	var (
		items    []item
		rejected []rejectionRow
		rowOf    []int // index in raws of each rejected row
	)
	// refuse records event i as refused: for why, eventID and customer, as
	// far as they could be read.
	refuse := func(i int, why *ledger.Rejection, eventID, customer string) {
		idx := i
		rej := EventRejection{Index: &idx, EventID: storableID(eventID), Code: why.Code, Detail: why.Detail}
		out[i] = EventResult{Status: EventRejected, Rejection: &rej}
		rejected = append(rejected, rejectionRow{rej: rej, raw: raws[i], customer: customer})
		rowOf = append(rowOf, i)
	}
	for i, raw := range raws {
		parse := ParseEvent
		if opts.CloudEvent != nil && opts.CloudEvent(i) {
			parse = ParseCloudEvent
		}
		e, props, err := parse(raw, received)
		if err != nil {
			refuse(i, ledger.DataRefusal(err), guessID(raw), guessCustomer(raw))
			continue
		}
		if opts.Customer != "" && e.CustomerID != opts.Customer {
			refuse(i, ledger.Reject(CodeCustomerNotAllowed, "this key may only send events for customer %q", opts.Customer),
				e.EventID, e.CustomerID)
			continue
		}
		op := &usageOp{svc: s, event: e, props: props, source: opts.Source, received: received}
		p, err := s.l.Enqueue(ctx, op)
		if err != nil {
			// Nothing of this one or the ones after it reached the poster.
			for j := i; j < len(raws); j++ {
				out[j] = EventResult{Status: EventFailed, Err: err}
			}
			break
		}
		items = append(items, item{op: op, p: p, index: i})
	}
	for _, it := range items {
		res, err := it.p.Wait(ctx)
		var (
			rej   *ledger.Rejection
			event = it.op.event
		)
		switch {
		case err == nil && res.Replayed:
			out[it.index] = EventResult{Status: EventDuplicate}
		case err == nil:
			out[it.index] = EventResult{Status: EventAccepted}
		case errors.As(err, &rej):
			// Refused by metering's rules, a counter limit, or data the
			// database would not store: never recorded under its key.
			refuse(it.index, rej, event.EventID, event.CustomerID)
		case errors.Is(err, ledger.ErrIdempotencyConflict):
			refuse(it.index, ledger.Reject(CodeConflictingEvent, "an event with this id and other content was applied before"),
				event.EventID, event.CustomerID)
		default:
			out[it.index] = EventResult{Status: EventFailed, Err: err}
		}
	}
	if len(rejected) > 0 {
		if err := s.recordRejections(ctx, opts.Source, received, rejected); err != nil {
			// Not recorded, not done: the sender must send them again.
			for _, i := range rowOf {
				out[i] = EventResult{Status: EventFailed, Err: err}
			}
		}
	}
	s.observer.Ingested(opts.Source, out)
	return out, nil
}

// guessCustomer is guessID's twin for the customer, checked as it is.
func guessCustomer(raw []byte) string {
	if _, subject, ok := cloudGuess(raw); ok {
		if text.Check("customer_id", subject, 128) == nil {
			return subject
		}
		return ""
	}
	var probe struct {
		CustomerID string `json:"customer_id"`
	}
	if json.Unmarshal(raw, &probe) == nil && text.Check("customer_id", probe.CustomerID, 128) == nil {
		return probe.CustomerID
	}
	return ""
}

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
	if id, _, ok := cloudGuess(raw); ok {
		return storableID(id)
	}
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
	b, _ := json.Marshal(v) // a value decoded from JSON: cannot fail
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
