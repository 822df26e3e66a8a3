package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/creditledger/creditledger/api"
	"github.com/creditledger/creditledger/api/problem"
	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/wallet"
)

// meteringEnv is an app with the wallet and metering routes on a real
// ledger, built as ledgerd builds it.
type meteringEnv struct {
	*walletEnv
	ledger *ledger.Ledger
}

func newMeteringEnv(t *testing.T) *meteringEnv {
	t.Helper()
	m := &meteringEnv{}
	e := newEnv(t, func(c *api.Config) {
		l, err := ledger.New(c.DB, ledger.Options{Modules: []ledger.Module{metering.Module(), wallet.Module()}})
		if err != nil {
			t.Fatal(err)
		}
		// Registered after newEnv's db.Close, so it runs before it.
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := l.Close(ctx); err != nil {
				t.Errorf("close ledger: %v", err)
			}
		})
		ws := wallet.NewService(l)
		ms := metering.NewService(l, ws, nil)
		c.Routes = append(api.WalletRoutes(ws), api.MeteringRoutes(ms)...)
		c.CustomerExists = ws.CustomerExists
		m.ledger = l
	})
	m.walletEnv = &walletEnv{e}
	return m
}

func (m *meteringEnv) key(t *testing.T, scope apikey.Scope, customer string) string {
	t.Helper()
	k, _, err := m.keys.Create(context.Background(), apikey.NewKey{Scope: scope, CustomerID: customer, Name: "metering test", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// tokenMeter makes a meter summing "tokens" of a fresh event name, grouped
// by model, priced per unit in CREDITS for model gpt.
func (m *meteringEnv) tokenMeter(t *testing.T) meterJSON {
	t.Helper()
	mt := want[meterJSON](t, m.do(t, "POST", "/v1/meters", m.admin, map[string]any{
		"code": uniq("tokens"), "event_name": uniq("llm"), "aggregation": "sum", "property": "tokens",
		"group_by": []string{"model"},
	}), 201)
	want[priceJSON](t, m.do(t, "POST", "/v1/prices", m.admin, map[string]any{
		"meter_code": mt.Code, "asset": "CREDITS", "model": "per_unit", "unit_price": "0.000003",
		"dimensions": map[string]string{"model": "gpt"},
	}), 201)
	return mt
}

// Wire shapes of the metering endpoints.
type (
	meterJSON struct {
		ID          string              `json:"id"`
		Code        string              `json:"code"`
		EventName   string              `json:"event_name"`
		Aggregation string              `json:"aggregation"`
		Property    string              `json:"property"`
		Filters     map[string][]string `json:"filters"`
		GroupBy     []string            `json:"group_by"`
		CreatedAt   time.Time           `json:"created_at"`
	}
	priceJSON struct {
		ID         string            `json:"id"`
		MeterCode  string            `json:"meter_code"`
		Asset      string            `json:"asset"`
		Model      string            `json:"model"`
		UnitPrice  string            `json:"unit_price"`
		FreeUnits  string            `json:"free_units"`
		Dimensions map[string]string `json:"dimensions"`
	}
	ingestJSON struct {
		Accepted   int `json:"accepted"`
		Duplicates int `json:"duplicates"`
		Rejected   []struct {
			EventID string `json:"event_id"`
			Code    string `json:"code"`
			Detail  string `json:"detail"`
		} `json:"rejected"`
	}
	rejectionJSON struct {
		ID         string    `json:"id"`
		EventID    string    `json:"event_id"`
		CustomerID string    `json:"customer_id"`
		Source     string    `json:"source"`
		Code       string    `json:"code"`
		Detail     string    `json:"detail"`
		Raw        string    `json:"raw"`
		ReceivedAt time.Time `json:"received_at"`
	}
	// usageJSON keeps quantities raw, to see that they are JSON strings.
	usageJSON struct {
		Meter  string    `json:"meter"`
		From   time.Time `json:"from"`
		To     time.Time `json:"to"`
		Window string    `json:"window"`
		Series []struct {
			Start    time.Time       `json:"start"`
			Quantity json.RawMessage `json:"quantity"`
			Amount   json.RawMessage `json:"amount"`
		} `json:"series"`
		Total  json.RawMessage `json:"total"`
		Amount json.RawMessage `json:"amount"`
	}
)

func tokenEvent(id, customer, name string, tokens int, ts *time.Time) map[string]any {
	e := map[string]any{"event_id": id, "customer_id": customer, "event_name": name,
		"properties": map[string]any{"tokens": tokens, "model": "gpt"}}
	if ts != nil {
		e["timestamp"] = ts.Format(time.RFC3339)
	}
	return e
}

// jsonString unquotes a JSON string, failing if raw is anything else.
func jsonString(t *testing.T, what string, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s = %s, want a JSON string", what, raw)
	}
	return s
}

// The whole path over HTTP: a wallet with credits, a priced meter, events
// charged exactly, resent without effect, and the usage they add up to.
func TestMeteringWalk(t *testing.T) {
	m := newMeteringEnv(t)
	f := m.newWallet(t, nil)
	m.grant(t, f.wallet, map[string]any{"amount": "100", "kind": "paid"})
	mt := m.tokenMeter(t)

	earlier := time.Now().UTC().Add(-90 * time.Minute).Truncate(time.Second)
	events := []map[string]any{
		tokenEvent("walk-1-"+f.customer, f.customer, mt.EventName, 1000, &earlier),
		tokenEvent("walk-2-"+f.customer, f.customer, mt.EventName, 2000, nil),
		tokenEvent("walk-3-"+f.customer, f.customer, mt.EventName, 500, nil),
	}
	res := want[ingestJSON](t, m.do(t, "POST", "/v1/events", m.admin, map[string]any{"events": events}), 202)
	if res.Accepted != 3 || res.Duplicates != 0 || len(res.Rejected) != 0 {
		t.Fatalf("ingest: %+v", res)
	}
	// 3,500 tokens at 0.000003.
	b := m.balance(t, f.wallet)
	sameAmount(t, "consumed", b.Consumed, "0.0105")
	sameAmount(t, "available", b.Available, "99.9895")

	res = want[ingestJSON](t, m.do(t, "POST", "/v1/events", m.admin, map[string]any{"events": events}), 202)
	if res.Accepted != 0 || res.Duplicates != 3 || len(res.Rejected) != 0 {
		t.Fatalf("resend: %+v", res)
	}
	sameAmount(t, "consumed after the resend", m.balance(t, f.wallet).Consumed, "0.0105")

	// An explicit range: the default, the wallet's cycle, starts when the
	// wallet was made, after the early event (reports_test.go tests it).
	dayAgo := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Second)
	u := want[usageJSON](t, m.do(t, "GET", "/v1/customers/"+f.customer+"/usage?meter="+mt.Code+"&from="+dayAgo.Format(time.RFC3339), m.admin, nil), 200)
	if u.Meter != mt.Code || u.Window != "hour" || !u.To.After(time.Now()) || !u.From.Equal(dayAgo) {
		t.Fatalf("usage head: %+v", u)
	}
	if got := jsonString(t, "total", u.Total); got != "3500" {
		t.Fatalf("total %s, want 3500", got)
	}
	sameAmount(t, "usage amount", jsonString(t, "amount", u.Amount), "0.0105")
	// The early event is in an hour of its own; the others are in this one.
	if len(u.Series) != 2 {
		t.Fatalf("series %+v, want 2 hours", u.Series)
	}
	if !u.Series[0].Start.Equal(earlier.Truncate(time.Hour)) {
		t.Errorf("first bucket starts %s, want %s", u.Series[0].Start, earlier.Truncate(time.Hour))
	}
	if got := jsonString(t, "series[0].quantity", u.Series[0].Quantity); got != "1000" {
		t.Errorf("series[0].quantity %s, want 1000", got)
	}
	if got := jsonString(t, "series[1].quantity", u.Series[1].Quantity); got != "2500" {
		t.Errorf("series[1].quantity %s, want 2500", got)
	}
	sameAmount(t, "series[0].amount", jsonString(t, "series[0].amount", u.Series[0].Amount), "0.003")
	sameAmount(t, "series[1].amount", jsonString(t, "series[1].amount", u.Series[1].Amount), "0.0075")

	// Daily windows over an explicit range that leaves the early event out.
	from := earlier.Add(time.Minute).Format(time.RFC3339)
	q := url.Values{"meter": {mt.Code}, "from": {from}, "window": {"day"}}
	u = want[usageJSON](t, m.do(t, "GET", "/v1/customers/"+f.customer+"/usage?"+q.Encode(), m.admin, nil), 200)
	if got := jsonString(t, "total", u.Total); got != "2500" || u.Window != "day" {
		t.Fatalf("usage from %s by day: total %s window %s", from, got, u.Window)
	}

	// The meter and price are listed.
	meters := want[pageJSON[meterJSON]](t, m.do(t, "GET", "/v1/meters", m.admin, nil), 200)
	if !containsFunc(meters.Data, func(x meterJSON) bool { return x.Code == mt.Code && x.GroupBy[0] == "model" }) ||
		meters.NextCursor != nil {
		t.Errorf("GET /v1/meters lacks %s or has a next page: %+v", mt.Code, meters)
	}
	prices := want[pageJSON[priceJSON]](t, m.do(t, "GET", "/v1/prices", m.admin, nil), 200)
	if !containsFunc(prices.Data, func(p priceJSON) bool {
		return p.MeterCode == mt.Code && p.UnitPrice == "0.000003" && p.Dimensions["model"] == "gpt"
	}) {
		t.Errorf("GET /v1/prices lacks the price of %s: %+v", mt.Code, prices)
	}
}

func containsFunc[T any](s []T, f func(T) bool) bool {
	for _, x := range s {
		if f(x) {
			return true
		}
	}
	return false
}

// Who may call what: ingest keys only send events, read keys only read,
// portal tokens only read their own customer's usage.
func TestMeteringScopes(t *testing.T) {
	m := newMeteringEnv(t)
	own := m.newWallet(t, nil)
	m.grant(t, own.wallet, map[string]any{"amount": "1", "kind": "paid"})
	other := m.newWallet(t, nil)
	mt := m.tokenMeter(t)

	ingest := m.key(t, apikey.Ingest, "")
	read := m.key(t, apikey.Read, "")
	portalOwn := m.key(t, apikey.Portal, own.customer)
	portalOther := m.key(t, apikey.Portal, other.customer)

	// Unpriced: the meter exists, so only the scope decides.
	meterBody := func() map[string]any {
		return map[string]any{"code": uniq("scoped"), "event_name": "scoped", "aggregation": "count"}
	}
	priceBody := map[string]any{"meter_code": mt.Code, "asset": "USD", "model": "per_unit", "unit_price": "1"}
	eventsBody := func() map[string]any {
		return map[string]any{"events": []any{tokenEvent(uniq("scope"), own.customer, mt.EventName, 1, nil)}}
	}
	usage := "/v1/customers/" + own.customer + "/usage?meter=" + mt.Code
	rejected := "/v1/events/rejected?customer_id=" + own.customer

	type call struct {
		method, path string
		body         any
		status       int
	}
	cases := []struct {
		name  string
		key   string
		calls []call
	}{
		{"ingest", ingest, []call{
			{"POST", "/v1/events", eventsBody(), 202},
			{"POST", "/v1/meters", meterBody(), 403},
			{"POST", "/v1/prices", priceBody, 403},
			{"GET", "/v1/meters", nil, 403},
			{"GET", "/v1/prices", nil, 403},
			{"GET", usage, nil, 403},
			{"GET", rejected, nil, 403},
		}},
		{"read", read, []call{
			{"GET", "/v1/meters", nil, 200},
			{"GET", "/v1/prices", nil, 200},
			{"GET", usage, nil, 200},
			{"GET", rejected, nil, 200},
			{"POST", "/v1/events", eventsBody(), 403},
			{"POST", "/v1/meters", meterBody(), 403},
			{"POST", "/v1/prices", priceBody, 403},
		}},
		{"portal-own", portalOwn, []call{
			{"GET", usage, nil, 200},
			{"GET", rejected, nil, 200},
			// Without customer_id the list would be everyone's.
			{"GET", "/v1/events/rejected", nil, 404},
			{"GET", "/v1/meters", nil, 403},
			{"GET", "/v1/prices", nil, 403},
			{"POST", "/v1/events", eventsBody(), 403},
		}},
		{"portal-other", portalOther, []call{
			{"GET", usage, nil, 404},
			{"GET", rejected, nil, 404},
		}},
		{"none", "", []call{
			{"GET", usage, nil, 401},
			{"GET", "/v1/meters", nil, 401},
			{"POST", "/v1/events", eventsBody(), 401},
		}},
		{"admin", m.admin, []call{
			{"GET", usage, nil, 200},
			{"POST", "/v1/events", eventsBody(), 202},
			{"POST", "/v1/meters", meterBody(), 201},
			{"POST", "/v1/prices", priceBody, 201},
		}},
	}
	codes := map[int]problem.Code{401: problem.Unauthorized, 403: problem.Forbidden, 404: problem.NotFound}
	for _, c := range cases {
		for _, cl := range c.calls {
			r := m.do(t, cl.method, cl.path, c.key, cl.body)
			if code, ok := codes[cl.status]; ok {
				if r.status != cl.status {
					t.Errorf("%s: %s %s: status %d, want %d\n%s", c.name, cl.method, cl.path, r.status, cl.status, r.body)
					continue
				}
				wantProblem(t, r, cl.status, code)
			} else if r.status != cl.status {
				t.Errorf("%s: %s %s: status %d, want %d\n%s", c.name, cl.method, cl.path, r.status, cl.status, r.body)
			}
		}
	}
	// The ingest key's event was charged like the admin's: two tokens.
	sameAmount(t, "consumed", m.balance(t, own.wallet).Consumed, "0.000006")
}

// Refused requests and refused events, and the list of the latter.
func TestMeteringBadInput(t *testing.T) {
	m := newMeteringEnv(t)
	f := m.newWallet(t, nil)
	m.grant(t, f.wallet, map[string]any{"amount": "10", "kind": "paid"})
	mt := m.tokenMeter(t)

	t.Run("events", func(t *testing.T) {
		for _, c := range []struct {
			name   string
			body   any
			status int
			code   problem.Code
			field  string
		}{
			{"not JSON", `{"events": [`, 400, problem.BadRequest, ""},
			{"not an object", `[{"event_id":"x"}]`, 400, problem.BadRequest, ""},
			{"events not an array", `{"events": {"event_id": "x"}}`, 422, problem.Validation, "events"},
			{"no events", `{}`, 422, problem.Validation, "events"},
			{"empty body", ``, 422, problem.Validation, "events"},
			{"empty list", `{"events": []}`, 422, problem.Validation, "events"},
			{"unknown key", `{"events": [{}], "source": "x"}`, 422, problem.Validation, "source"},
			{"1001 events", map[string]any{"events": make([]map[string]any, metering.MaxBatchEvents+1)}, 422, problem.Validation, "events"},
		} {
			p := wantProblem(t, m.do(t, "POST", "/v1/events", m.admin, c.body), c.status, c.code)
			if c.field != "" {
				wantField(t, p, c.field)
			}
		}
	})

	t.Run("meters and prices", func(t *testing.T) {
		wantProblem(t, m.do(t, "POST", "/v1/meters", m.admin, map[string]any{
			"code": mt.Code, "event_name": "other", "aggregation": "count"}), 409, problem.Conflict)
		p := wantProblem(t, m.do(t, "POST", "/v1/meters", m.admin, map[string]any{
			"code": uniq("m"), "event_name": "x", "aggregation": "median", "property": "n"}), 422, problem.Validation)
		wantField(t, p, "aggregation")
		p = wantProblem(t, m.do(t, "POST", "/v1/meters", m.admin, map[string]any{
			"code": uniq("m"), "event_name": "x", "aggregation": "count", "id": "mine"}), 422, problem.Validation)
		wantField(t, p, "id")

		price := func(edit map[string]any) map[string]any {
			b := map[string]any{"meter_code": mt.Code, "asset": "CREDITS", "model": "per_unit", "unit_price": "0.5"}
			for k, v := range edit {
				if v == nil {
					delete(b, k)
				} else {
					b[k] = v
				}
			}
			return b
		}
		for _, c := range []struct {
			name  string
			body  any
			field string
		}{
			{"number", price(map[string]any{"unit_price": 0.5}), "unit_price"},
			{"unknown model", price(map[string]any{"model": "flat"}), "model"},
			{"unknown meter", price(map[string]any{"meter_code": "no-such-meter"}), "meter_code"},
			{"no meter", price(map[string]any{"meter_code": nil}), "meter_code"},
			{"meter_code a number", price(map[string]any{"meter_code": 7}), "meter_code"},
			{"no asset", price(map[string]any{"asset": nil}), "asset"},
			{"bad asset", price(map[string]any{"asset": "credits"}), "asset"},
			{"unknown key", price(map[string]any{"currency": "USD"}), "currency"},
			{"misspelt key", price(map[string]any{"free_unit": "10"}), "free_unit"},
			{"dimension not grouped by", price(map[string]any{"dimensions": map[string]string{"region": "eu"}}), "dimensions"},
			{"tier of another model", price(map[string]any{"tiers": []any{}}), "tiers"},
		} {
			r := m.do(t, "POST", "/v1/prices", m.admin, c.body)
			if r.status != 422 {
				t.Errorf("%s: status %d, want 422\n%s", c.name, r.status, r.body)
				continue
			}
			wantField(t, wantProblem(t, r, 422, problem.Validation), c.field)
		}
		wantProblem(t, m.do(t, "POST", "/v1/prices", m.admin, `{"meter_code":`), 400, problem.BadRequest)
		// A price change in the past would price late events unlike
		// their neighbours already charged.
		past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
		wantField(t, wantProblem(t, m.do(t, "POST", "/v1/prices", m.admin, price(map[string]any{
			"dimensions": map[string]string{"model": "gpt"}, "effective_at": past})), 422, problem.Validation), "effective_at")
		wantField(t, wantProblem(t, m.do(t, "POST", "/v1/prices", m.admin, price(map[string]any{
			"effective_at": "tomorrow"})), 422, problem.Validation), "effective_at")
		// Two prices of a series cannot take over at the same instant.
		future := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
		later := price(map[string]any{"dimensions": map[string]string{"model": "gpt"}, "effective_at": future})
		want[json.RawMessage](t, m.do(t, "POST", "/v1/prices", m.admin, later), 201)
		wantProblem(t, m.do(t, "POST", "/v1/prices", m.admin, later), 409, problem.Conflict)
	})

	// Malformed events among good ones: the good ones apply, each bad one
	// is rejected on its own.
	good := tokenEvent("bad-input-good-"+f.customer, f.customer, mt.EventName, 1000, nil)
	raw := fmt.Sprintf(`{"events": [
		%s,
		{"event_id": "bad-ts-%[2]s", "customer_id": %[2]q, "event_name": %[3]q, "timestamp": "yesterday"},
		"not an event",
		{"event_id": "bad-name-%[2]s", "customer_id": %[2]q, "event_name": "9lives"},
		{"event_id": "no-meter-%[2]s", "customer_id": %[2]q, "event_name": "unmetered"}
	]}`, mustJSON(t, good), f.customer, mt.EventName)
	res := want[ingestJSON](t, m.do(t, "POST", "/v1/events", m.admin, raw), 202)
	if res.Accepted != 1 || res.Duplicates != 0 || len(res.Rejected) != 4 {
		t.Fatalf("ingest: %+v", res)
	}
	wantRejected := map[string]string{ // event id → code
		"bad-ts-" + f.customer:   metering.CodeInvalidEvent,
		"":                       metering.CodeInvalidEvent,
		"bad-name-" + f.customer: metering.CodeInvalidEvent,
		"no-meter-" + f.customer: metering.CodeNoMeter,
	}
	for _, r := range res.Rejected {
		if code, ok := wantRejected[r.EventID]; !ok || code != r.Code || r.Detail == "" {
			t.Errorf("rejected %+v, want code %q and a detail", r, code)
		}
	}
	sameAmount(t, "consumed", m.balance(t, f.wallet).Consumed, "0.003")

	t.Run("rejected list", func(t *testing.T) {
		// The three that name the customer; "not an event" names none.
		list := want[pageJSON[rejectionJSON]](t, m.do(t, "GET", "/v1/events/rejected?customer_id="+f.customer, m.admin, nil), 200)
		if len(list.Data) != 3 || list.NextCursor != nil {
			t.Fatalf("rejected: %+v", list)
		}
		for _, r := range list.Data {
			if code := wantRejected[r.EventID]; r.EventID == "" || code != r.Code || r.Detail == "" ||
				r.CustomerID != f.customer || r.Source != "http" || !strings.Contains(r.Raw, r.EventID) {
				t.Errorf("recorded %+v", r)
			}
		}

		// One at a time, in the same order, each once.
		var paged []rejectionJSON
		path := "/v1/events/rejected?limit=1&customer_id=" + f.customer
		for next := ""; ; {
			p := path
			if next != "" {
				p += "&cursor=" + url.QueryEscape(next)
			}
			page := want[pageJSON[rejectionJSON]](t, m.do(t, "GET", p, m.admin, nil), 200)
			if len(page.Data) > 1 || len(paged) > 3 {
				t.Fatalf("page %+v after %d", page, len(paged))
			}
			paged = append(paged, page.Data...)
			if page.NextCursor == nil {
				break
			}
			next = *page.NextCursor
		}
		if len(paged) != 3 {
			t.Fatalf("paged %d rejections, want 3", len(paged))
		}
		for i := range paged {
			if paged[i].ID != list.Data[i].ID {
				t.Errorf("page %d is %s, the full list has %s", i, paged[i].ID, list.Data[i].ID)
			}
		}

		// The portal token of the customer sees them too.
		portal := m.key(t, apikey.Portal, f.customer)
		if got := want[pageJSON[rejectionJSON]](t, m.do(t, "GET", "/v1/events/rejected?customer_id="+f.customer, portal, nil), 200); len(got.Data) != 3 {
			t.Errorf("portal sees %d rejections, want 3", len(got.Data))
		}

		wantField(t, wantProblem(t, m.do(t, "GET", "/v1/events/rejected?cursor=nonsense", m.admin, nil), 422, problem.Validation), "cursor")
		wantField(t, wantProblem(t, m.do(t, "GET", "/v1/events/rejected?limit=0", m.admin, nil), 422, problem.Validation), "limit")
	})

	t.Run("usage", func(t *testing.T) {
		U := "/v1/customers/" + f.customer + "/usage"
		for _, c := range []struct {
			query, field string
		}{
			{"?meter=,", "meter"},
			{"?meter=no-such-meter", "meter"},
			{"?meter=" + mt.Code + ",no-such-meter", "meter"},
			{"?meter=" + mt.Code + "&group_by=region", "group_by"},
			{"?group_by=no-meter-groups-by-this", "group_by"},
			{"?meter=" + mt.Code + "&format=xml", "format"},
			{"?meter=" + mt.Code + "&window=week", "window"},
			{"?meter=" + mt.Code + "&from=yesterday", "from"},
			{"?meter=" + mt.Code + "&to=2025-01-01", "to"},
			{"?meter=" + mt.Code + "&from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z", "to"},
		} {
			r := m.do(t, "GET", U+c.query, m.admin, nil)
			if r.status != 422 {
				t.Errorf("%s: status %d, want 422\n%s", c.query, r.status, r.body)
				continue
			}
			wantField(t, wantProblem(t, r, 422, problem.Validation), c.field)
		}
		wantProblem(t, m.do(t, "GET", "/v1/customers/no-such-customer/usage?meter="+mt.Code, m.admin, nil), 404, problem.NotFound)
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A batch the database cannot take is a 503 the client retries whole.
func TestMeteringIngestUnavailable(t *testing.T) {
	m := newMeteringEnv(t)
	f := m.newWallet(t, nil)
	mt := m.tokenMeter(t)
	m.db.Pool.Close()
	r := m.do(t, "POST", "/v1/events", m.admin, map[string]any{
		"events": []any{tokenEvent("down-"+f.customer, f.customer, mt.EventName, 1, nil)}})
	wantProblem(t, r, 503, problem.Unavailable)
	if r.header.Get("Retry-After") == "" {
		t.Error("no Retry-After header")
	}
}

// An ingest key bound to one customer sends that customer's events; an
// event naming another is refused alone (202, listed under rejected), and a
// poison event among good ones is refused alone too, never a 503 for all.
func TestMeteringBoundIngestKey(t *testing.T) {
	m := newMeteringEnv(t)
	own := m.newWallet(t, nil)
	other := m.newWallet(t, nil)
	m.grant(t, own.wallet, map[string]any{"amount": "100", "kind": "paid"})
	m.grant(t, other.wallet, map[string]any{"amount": "100", "kind": "paid"})
	mt := m.tokenMeter(t)
	bound := m.key(t, apikey.Ingest, own.customer)
	res := want[ingestJSON](t, m.do(t, "POST", "/v1/events", bound, map[string]any{"events": []any{
		tokenEvent("bound-own-"+own.customer, own.customer, mt.EventName, 1000, nil),
		tokenEvent("bound-other-"+other.customer, other.customer, mt.EventName, 1000, nil),
	}}), 202)
	if res.Accepted != 1 || len(res.Rejected) != 1 || res.Rejected[0].EventID != "bound-other-"+other.customer ||
		res.Rejected[0].Code != metering.CodeCustomerNotAllowed {
		t.Fatalf("bound key: %+v", res)
	}
	sameAmount(t, "other's consumed", m.balance(t, other.wallet).Consumed, "0")

	// The hot-row attack's quantity, among good events: refused alone.
	huge := tokenEvent("huge-"+own.customer, own.customer, mt.EventName, 0, nil)
	huge["properties"] = map[string]any{"tokens": json.Number("33333333333333333333333332000000"), "model": "gpt"}
	res = want[ingestJSON](t, m.do(t, "POST", "/v1/events", m.admin, map[string]any{"events": []any{
		huge, tokenEvent("after-huge-"+own.customer, own.customer, mt.EventName, 1000, nil)}}), 202)
	if res.Accepted != 1 || len(res.Rejected) != 1 || res.Rejected[0].Code != metering.CodeInvalidValue {
		t.Fatalf("huge quantity among good events: %+v", res)
	}
	sameAmount(t, "own consumed", m.balance(t, own.wallet).Consumed, "0.006")
}
