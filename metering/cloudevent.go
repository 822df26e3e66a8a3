package metering

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/creditledger/creditledger/internal/strictjson"
	"github.com/creditledger/creditledger/ledger"
)

// CloudEvents media types (structured mode, JSON format).
const (
	CloudEventType      = "application/cloudevents+json"
	CloudEventBatchType = "application/cloudevents-batch+json"
)

// ParseCloudEvent reads a CloudEvents 1.0 event in structured mode as a
// usage event, for HTTP and NATS alike: id → event_id, subject →
// customer_id, type → event_name, time → timestamp, data → properties. It
// is then checked as ParseEvent checks a native event, with the same
// fingerprint, so the same usage sent in either form is one event. The
// error is a *ledger.Rejection naming the CloudEvents attribute at fault.
//
// source is required, as the specification says, but not kept: the ledger
// knows its senders by their keys and subjects. Extension attributes are
// ignored, as a consumer may.
func ParseCloudEvent(raw []byte, received time.Time) (Event, properties, error) {
	bad := func(format string, args ...any) error { return ledger.Reject(CodeInvalidEvent, format, args...) }
	if len(raw) > MaxEventBytes {
		return Event{}, nil, bad("event is larger than %d bytes", MaxEventBytes)
	}
	if !utf8.Valid(raw) {
		return Event{}, nil, bad("event is not valid UTF-8; JSON is UTF-8")
	}
	var attrs map[string]json.RawMessage
	if err := strictjson.Unmarshal(raw, &attrs); err != nil {
		var strict *strictjson.Error
		switch {
		case errors.As(err, &strict):
			return Event{}, nil, bad("%s", strict.Error())
		case json.Valid(raw):
			return Event{}, nil, bad("a CloudEvent must be a JSON object (one event; a batch is a JSON array sent as %s over HTTP)", CloudEventBatchType)
		}
		return Event{}, nil, ledger.Reject(CodeInvalidJSON, "%s", decodeDetail(err))
	}
	str := func(name string, required bool) (string, error) {
		v, ok := attrs[name]
		if !ok || string(v) == "null" {
			if required {
				return "", bad("%s: required", name)
			}
			return "", nil
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			return "", bad("%s must be a string", name)
		}
		if required && s == "" {
			return "", bad("%s: required", name)
		}
		return s, nil
	}
	spec, err := str("specversion", true)
	if err != nil {
		return Event{}, nil, err
	}
	if spec != "1.0" {
		return Event{}, nil, bad("specversion %q: only CloudEvents 1.0 is read", spec)
	}
	// id and type are carried over raw below and checked as a native
	// event's event_id and event_name are; here only their presence.
	for _, name := range []string{"id", "source", "type"} {
		if _, err := str(name, true); err != nil {
			return Event{}, nil, err
		}
	}
	subject, err := str("subject", false)
	if err != nil {
		return Event{}, nil, err
	}
	if subject == "" {
		return Event{}, nil, bad("subject: required: the id of the customer the usage is charged to")
	}
	ct, err := str("datacontenttype", false)
	if err != nil {
		return Event{}, nil, err
	}
	if ct != "" && !isJSONType(ct) {
		return Event{}, nil, bad("datacontenttype %q: data must be JSON (application/json)", ct)
	}
	if _, ok := attrs["data_base64"]; ok {
		return Event{}, nil, bad("data_base64: binary data cannot be metered; send data as a JSON object")
	}
	native := map[string]json.RawMessage{}
	for from, to := range map[string]string{"id": "event_id", "subject": "customer_id", "type": "event_name", "time": "timestamp"} {
		if v, ok := attrs[from]; ok {
			native[to] = v
		}
	}
	if data, ok := attrs["data"]; ok && string(data) != "null" {
		if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
			return Event{}, nil, bad("data must be a JSON object of the event's properties")
		}
		native["properties"] = data
	}
	body, err := json.Marshal(native)
	if err != nil {
		return Event{}, nil, bad("not a valid event")
	}
	e, props, err := ParseEvent(body, received)
	var rej *ledger.Rejection
	if errors.As(err, &rej) {
		return Event{}, nil, ledger.Reject(rej.Code, "%s", cloudDetail(rej.Detail))
	}
	return e, props, err
}

// cloudDetail says a native event's refusal in CloudEvents' words.
func cloudDetail(detail string) string {
	for _, r := range [][2]string{{"event_id", "id"}, {"customer_id", "subject"}, {"event_name", "type"},
		{"timestamp", "time"}, {"properties", "data"}} {
		if strings.HasPrefix(detail, r[0]) {
			return r[1] + strings.TrimPrefix(detail, r[0])
		}
	}
	return detail
}

// isJSONType reports whether a media type is application/json (a charset,
// if any, UTF-8).
func isJSONType(s string) bool {
	typ, params, err := mime.ParseMediaType(s)
	if err != nil || typ != "application/json" {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8")
}

// IsCloudEvent reports whether a NATS message is a CloudEvent: its
// Content-Type header says so, or its body has a specversion attribute
// (structured mode without the header, as most CloudEvents SDKs publish).
func IsCloudEvent(contentType string, body []byte) bool {
	if typ, _, err := mime.ParseMediaType(contentType); err == nil && (typ == CloudEventType || typ == CloudEventBatchType) {
		return true
	}
	if !bytes.Contains(body, []byte(`"specversion"`)) {
		return false // the cheap answer for nearly every native event
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(body, &probe) != nil {
		return false
	}
	_, ok := probe["specversion"]
	return ok
}

// cloudGuess digs the id and subject out of a CloudEvent that did not
// parse, for the rejection's record; ok is false if raw is not one.
func cloudGuess(raw []byte) (id, subject string, ok bool) {
	if !bytes.Contains(raw, []byte(`"specversion"`)) {
		return "", "", false // a native event: no second decoding on the consumer's path
	}
	var probe struct {
		SpecVersion *json.RawMessage `json:"specversion"`
		ID          string           `json:"id"`
		Subject     string           `json:"subject"`
	}
	if json.Unmarshal(raw, &probe) != nil || probe.SpecVersion == nil {
		return "", "", false
	}
	return probe.ID, probe.Subject, true
}
