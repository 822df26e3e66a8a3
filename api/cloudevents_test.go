package api_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/creditledger/creditledger/api/problem"
	"github.com/creditledger/creditledger/apikey"
)

func ceHeader(typ string) map[string]string { return map[string]string{"Content-Type": typ} }

// CloudEvents on POST /v1/events: one, a batch with bad ones among good
// ones, each bad one rejected with its reason and recorded; the answer is
// POST /v1/events' own.
func TestCloudEventsHTTP(t *testing.T) {
	m := newMeteringEnv(t)
	f := m.newWallet(t, nil)
	m.grant(t, f.wallet, map[string]any{"amount": "100", "kind": "paid"})
	mt := m.tokenMeter(t)
	ce := func(id string, tokens int) map[string]any {
		return map[string]any{"specversion": "1.0", "id": id + "-" + f.customer, "source": "/tests", "type": mt.EventName,
			"subject": f.customer, "data": map[string]any{"tokens": tokens, "model": "gpt"}}
	}

	one := ce("ce-one", 1000)
	one["time"] = time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	res := want[ingestJSON](t, m.doH(t, "POST", "/v1/events", m.admin, ceHeader("application/cloudevents+json"), one), 202)
	if res.Accepted != 1 || len(res.Rejected) != 0 {
		t.Fatalf("one CloudEvent: %+v", res)
	}
	sameAmount(t, "consumed", m.balance(t, f.wallet).Consumed, "0.003")
	e := want[storedEventJSON](t, m.do(t, "GET", "/v1/events/ce-one-"+f.customer, m.admin, nil), 200)
	if e.CustomerID != f.customer || e.EventName != mt.EventName || e.Properties["model"] != "gpt" || len(e.Charges) != 1 {
		t.Errorf("stored: %+v", e)
	}
	// The same event again, natively: a duplicate, not a conflict.
	native := map[string]any{"event_id": one["id"], "customer_id": f.customer, "event_name": mt.EventName,
		"timestamp": one["time"], "properties": one["data"]}
	if res := want[ingestJSON](t, m.do(t, "POST", "/v1/events", m.admin, map[string]any{"events": []any{native}}), 202); res.Duplicates != 1 {
		t.Errorf("the native twin: %+v, want a duplicate", res)
	}

	noSubject, textData, xml := ce("ce-nosub", 1), ce("ce-text", 1), ce("ce-xml", 1)
	delete(noSubject, "subject")
	textData["data"] = "tokens=1"
	xml["datacontenttype"] = "application/xml"
	batch := []any{ce("ce-b1", 2000), noSubject, textData, xml, ce("ce-b2", 500)}
	res = want[ingestJSON](t, m.doH(t, "POST", "/v1/events", m.admin, ceHeader("application/cloudevents-batch+json; charset=utf-8"), batch), 202)
	if res.Accepted != 2 || len(res.Rejected) != 3 {
		t.Fatalf("batch: %+v", res)
	}
	for i, says := range []string{"subject: required", "data must be a JSON object", "datacontenttype"} {
		if r := res.Rejected[i]; r.Code != "invalid_event" || !strings.Contains(r.Detail, says) {
			t.Errorf("rejected[%d] = %+v, want invalid_event saying %q", i, r, says)
		}
	}
	sameAmount(t, "consumed after the batch", m.balance(t, f.wallet).Consumed, "0.0105")
	// Recorded like every rejection, under their customer when they name one.
	rs := want[pageJSON[rejectionJSON]](t, m.do(t, "GET", "/v1/events/rejected?customer_id="+url.QueryEscape(f.customer), m.admin, nil), 200)
	if len(rs.Data) != 2 {
		t.Errorf("recorded for the customer: %+v", rs.Data)
	}
	all := want[pageJSON[rejectionJSON]](t, m.do(t, "GET", "/v1/events/rejected?limit=500", m.admin, nil), 200)
	found := false
	for _, r := range all.Data {
		found = found || (r.EventID == "ce-nosub-"+f.customer && strings.Contains(r.Detail, "subject") && strings.Contains(r.Raw, `"specversion"`))
	}
	if !found {
		t.Error("the CloudEvent without a subject is not recorded with its raw body")
	}

	// Broken bodies: one CloudEvent that is not JSON is that event's
	// rejection; a batch that is not an array fails the request.
	res = want[ingestJSON](t, m.doH(t, "POST", "/v1/events", m.admin, ceHeader("application/cloudevents+json"), `{"specversion":`), 202)
	if len(res.Rejected) != 1 || res.Rejected[0].Code != "invalid_json" {
		t.Errorf("broken CloudEvent: %+v", res)
	}
	wantProblem(t, m.doH(t, "POST", "/v1/events", m.admin, ceHeader("application/cloudevents-batch+json"), `{"events":[]}`), 400, problem.BadRequest)
	wantProblem(t, m.doH(t, "POST", "/v1/events", m.admin, ceHeader("application/cloudevents-batch+json"), `[`), 400, problem.BadRequest)
	wantProblem(t, m.doH(t, "POST", "/v1/events", m.admin, ceHeader("application/cloudevents-batch+json"), `[]`), 422, problem.Validation)
	// An ingest key bound to a customer sends only its events, in either form.
	bound := m.key(t, apikey.Ingest, f.customer)
	other := ce("ce-other", 1)
	other["subject"] = m.newCustomer(t)
	res = want[ingestJSON](t, m.doH(t, "POST", "/v1/events", bound, ceHeader("application/cloudevents+json"), other), 202)
	if len(res.Rejected) != 1 || res.Rejected[0].Code != "customer_not_allowed" {
		t.Errorf("bound key, another subject: %+v", res)
	}
	// The CloudEvents types are taken on this route only.
	wantProblem(t, m.doH(t, "POST", "/v1/meters", m.admin, ceHeader("application/cloudevents+json"),
		map[string]any{"code": uniq("x"), "event_name": "x", "aggregation": "count"}), 415, problem.UnsupportedMediaType)
	wantProblem(t, m.doH(t, "POST", "/v1/events", m.admin, ceHeader("application/cloudevents+json; charset=latin1"), one), 415, problem.UnsupportedMediaType)
}
