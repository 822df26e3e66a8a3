package metering

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/creditledger/creditledger/ledger"
)

func cloudEvent(mod func(map[string]any)) []byte {
	e := map[string]any{"specversion": "1.0", "id": "ce-1", "source": "/app", "type": "llm.completion",
		"subject": "acme", "time": "2026-01-02T03:04:05Z", "data": map[string]any{"tokens": 12, "model": "gpt"}}
	if mod != nil {
		mod(e)
	}
	b, _ := json.Marshal(e)
	return b
}

// A CloudEvent maps onto the native event, attribute by attribute, and a
// bad one is refused with the attribute named.
func TestParseCloudEvent(t *testing.T) {
	received := time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC)
	e, props, err := ParseCloudEvent(cloudEvent(nil), received)
	if err != nil {
		t.Fatal(err)
	}
	if e.EventID != "ce-1" || e.CustomerID != "acme" || e.EventName != "llm.completion" ||
		!e.Timestamp.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) || props["model"] != "gpt" || props["tokens"] != json.Number("12") {
		t.Fatalf("parsed %+v %v", e, props)
	}
	// The same event sent natively has the same fingerprint: one event.
	native, nprops, err := ParseEvent([]byte(`{"event_id":"ce-1","customer_id":"acme","event_name":"llm.completion",
		"timestamp":"2026-01-02T03:04:05Z","properties":{"model":"gpt","tokens":12}}`), received)
	if err != nil {
		t.Fatal(err)
	}
	a, b := (&usageOp{event: e, props: props}).Fingerprint(), (&usageOp{event: native, props: nprops}).Fingerprint()
	if string(a) != string(b) {
		t.Error("a CloudEvent and its native twin have different fingerprints")
	}
	// Extension attributes, no data, no time: fine.
	if e, _, err := ParseCloudEvent(cloudEvent(func(m map[string]any) {
		m["traceparent"] = "00-abc"
		m["datacontenttype"] = "application/json; charset=utf-8"
		delete(m, "data")
		delete(m, "time")
	}), received); err != nil || !e.Timestamp.Equal(received) {
		t.Errorf("minimal CloudEvent: %+v %v", e, err)
	}

	for _, c := range []struct {
		name string
		raw  []byte
		code string
		says string
	}{
		{"no subject", cloudEvent(func(m map[string]any) { delete(m, "subject") }), CodeInvalidEvent, "subject: required"},
		{"empty subject", cloudEvent(func(m map[string]any) { m["subject"] = "" }), CodeInvalidEvent, "subject: required"},
		{"bad subject", cloudEvent(func(m map[string]any) { m["subject"] = "a b" }), CodeInvalidEvent, "subject: 1 to 128"},
		{"data a string", cloudEvent(func(m map[string]any) { m["data"] = "tokens=12" }), CodeInvalidEvent, "data must be a JSON object"},
		{"data an array", cloudEvent(func(m map[string]any) { m["data"] = []int{1} }), CodeInvalidEvent, "data must be a JSON object"},
		{"xml", cloudEvent(func(m map[string]any) { m["datacontenttype"] = "application/xml" }), CodeInvalidEvent, "datacontenttype"},
		{"binary", cloudEvent(func(m map[string]any) { delete(m, "data"); m["data_base64"] = "AAAA" }), CodeInvalidEvent, "data_base64"},
		{"old spec", cloudEvent(func(m map[string]any) { m["specversion"] = "0.3" }), CodeInvalidEvent, "specversion"},
		{"no specversion", cloudEvent(func(m map[string]any) { delete(m, "specversion") }), CodeInvalidEvent, "specversion: required"},
		{"no id", cloudEvent(func(m map[string]any) { delete(m, "id") }), CodeInvalidEvent, "id: required"},
		{"no source", cloudEvent(func(m map[string]any) { delete(m, "source") }), CodeInvalidEvent, "source: required"},
		{"bad type", cloudEvent(func(m map[string]any) { m["type"] = "9lives" }), CodeInvalidEvent, "type: 1 to 64"},
		{"bad time", cloudEvent(func(m map[string]any) { m["time"] = "yesterday" }), CodeInvalidEvent, "time must be an RFC 3339"},
		{"id a number", cloudEvent(func(m map[string]any) { m["id"] = 7 }), CodeInvalidEvent, "id must be a string"},
		{"an array", []byte(`[` + string(cloudEvent(nil)) + `]`), CodeInvalidEvent, "must be a JSON object"},
		{"broken", []byte(`{"specversion":"1.0",`), CodeInvalidJSON, "not valid JSON"},
		{"duplicate key", []byte(`{"specversion":"1.0","subject":"a","subject":"b"}`), CodeInvalidEvent, "more than once"},
	} {
		_, _, err := ParseCloudEvent(c.raw, received)
		var rej *ledger.Rejection
		if !errors.As(err, &rej) || rej.Code != c.code || !strings.Contains(rej.Detail, c.says) {
			t.Errorf("%s: %v; want %s saying %q", c.name, err, c.code, c.says)
		}
	}
}

func TestIsCloudEvent(t *testing.T) {
	for _, c := range []struct {
		header string
		body   string
		want   bool
	}{
		{"application/cloudevents+json", `{}`, true},
		{"application/cloudevents+json; charset=utf-8", `{}`, true},
		{"", `{"specversion":"1.0","id":"x"}`, true},
		{"application/json", `{"specversion":"1.0"}`, true},
		{"", `{"event_id":"x","properties":{"note":"specversion"}}`, false},
		{"", `{"event_id":"x","properties":{"specversion":"1"}}`, false},
		{"", `{"event_id":"x"}`, false},
		{"text/plain", `not json "specversion"`, false},
	} {
		if got := IsCloudEvent(c.header, []byte(c.body)); got != c.want {
			t.Errorf("IsCloudEvent(%q, %s) = %v, want %v", c.header, c.body, got, c.want)
		}
	}
}

// Over NATS, a CloudEvent is known by its Content-Type header or by its
// specversion; a bad one is rejected and recorded with its reason.
func TestConsumerCloudEvents(t *testing.T) {
	w := newWorld(t)
	nc, js := broker(t)
	cus, wl := w.customer(t, "1000")
	m := w.meter(t, Meter{Code: "tokens", Aggregation: Sum, Property: "tokens"})
	w.price(t, m, `{"model":"per_unit","unit_price":"1"}`)
	c, err := NewConsumer(context.Background(), nc, w.svc, consumerOpts("S"+cus[4:]))
	if err != nil {
		t.Fatal(err)
	}
	runConsumer(t, c)
	ce := func(id string, tokens int, mod func(map[string]any)) []byte {
		return cloudEvent(func(e map[string]any) {
			e["id"], e["subject"], e["type"], e["data"] = id+"-"+cus, cus, m.EventName, map[string]any{"tokens": tokens}
			delete(e, "time")
			if mod != nil {
				mod(e)
			}
		})
	}
	send := func(body []byte, header string) {
		t.Helper()
		msg := &nats.Msg{Subject: "ledger.events." + cus, Data: body, Header: nats.Header{}}
		if header != "" {
			msg.Header.Set("Content-Type", header)
		}
		if _, err := js.PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	send(ce("with-header", 5, nil), "application/cloudevents+json")
	send(ce("specversion-only", 7, nil), "")
	send(ce("no-subject", 100, func(e map[string]any) { delete(e, "subject") }), "application/cloudevents+json")
	// Published on this customer's subject but naming another: refused, not guessed at.
	send(ce("misrouted", 1000, func(e map[string]any) { e["subject"] = "someone-else" }), "")
	w.waitConsumed(t, wl.ID, "12")

	evs, _, err := w.svc.Events(context.Background(), EventFilter{Customer: cus}, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Source != "nats" || len(evs[0].Charges) != 1 {
		t.Fatalf("events %+v", evs)
	}
	// The one without a subject: recorded, with its id and the reason.
	deadline := time.Now().Add(10 * time.Second)
	for {
		rs, _, err := w.svc.Rejections(context.Background(), "", "", 500)
		if err != nil {
			t.Fatal(err)
		}
		found, misrouted := false, false
		for _, r := range rs {
			if r.EventID == "misrouted-"+cus {
				misrouted = true
				if r.CustomerID != "someone-else" || !strings.Contains(r.Detail, "names customer") {
					t.Errorf("misrouted CloudEvent recorded as %+v", r)
				}
			}
			if r.EventID == "no-subject-"+cus {
				found = true
				if r.Code != CodeInvalidEvent || !strings.Contains(r.Detail, "subject: required") || r.Source != "nats" {
					t.Errorf("rejection %+v", r)
				}
			}
		}
		if found && misrouted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rejections recorded: without a subject %v, misrouted %v; want both", found, misrouted)
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.waitConsumed(t, wl.ID, "12") // the misrouted and the subjectless charged nothing
}
