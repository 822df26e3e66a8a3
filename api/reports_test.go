package api_test

import (
	"encoding/csv"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creditledger/creditledger/api/problem"
	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/wallet"
)

// Wire shapes of the reports, decimals as the strings they must be.
type (
	reportPointJSON struct {
		Start    time.Time         `json:"start"`
		End      time.Time         `json:"end"`
		Quantity string            `json:"quantity"`
		Amount   string            `json:"amount"`
		Amounts  map[string]string `json:"amounts"`
	}
	reportJSON struct {
		Meter   string            `json:"meter"`
		From    time.Time         `json:"from"`
		To      time.Time         `json:"to"`
		Window  string            `json:"window"`
		Series  []reportPointJSON `json:"series"`
		Total   string            `json:"total"`
		Amount  string            `json:"amount"`
		Amounts map[string]string `json:"amounts"`
		GroupBy string            `json:"group_by"`
		Groups  []struct {
			Value   string            `json:"value"`
			Series  []reportPointJSON `json:"series"`
			Total   string            `json:"total"`
			Amount  string            `json:"amount"`
			Amounts map[string]string `json:"amounts"`
		} `json:"groups"`
	}
	reportListJSON struct {
		From, To time.Time
		Window   string       `json:"window"`
		Data     []reportJSON `json:"data"`
	}
	storedEventJSON struct {
		EventID    string         `json:"event_id"`
		CustomerID string         `json:"customer_id"`
		EventName  string         `json:"event_name"`
		Timestamp  time.Time      `json:"timestamp"`
		Properties map[string]any `json:"properties"`
		Source     string         `json:"source"`
		Misses     []any          `json:"misses"`
		Charges    []struct {
			Meter      string            `json:"meter"`
			Asset      string            `json:"asset"`
			Dimensions map[string]string `json:"dimensions"`
			Quantity   string            `json:"quantity"`
			Amount     string            `json:"amount"`
			Covered    string            `json:"covered"`
			Overage    string            `json:"overage"`
		} `json:"charges"`
	}
)

// reportFixture: a wallet with 0.004 credits and three token events at
// known hours of yesterday: gpt 1000 (0.003, covered), gpt 2000 (0.006:
// 0.001 covered, 0.005 overage), other 500 (no price for that model).
type reportFixture struct {
	fixture
	meter  meterJSON
	day    time.Time // yesterday, 00:00 UTC
	events []string
}

func newReportFixture(t *testing.T, m *meteringEnv) reportFixture {
	t.Helper()
	f := reportFixture{fixture: m.newWallet(t, nil), meter: m.tokenMeter(t)}
	m.grant(t, f.wallet, map[string]any{"amount": "0.004", "kind": "paid"})
	f.day = time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	var events []any
	for i, e := range []struct {
		model  string
		tokens int
	}{{"gpt", 1000}, {"gpt", 2000}, {"other", 500}} {
		ts := f.day.Add(time.Duration(9+i) * time.Hour)
		ev := tokenEvent(uniq("rep"), f.customer, f.meter.EventName, e.tokens, &ts)
		ev["properties"].(map[string]any)["model"] = e.model
		events = append(events, ev)
		f.events = append(f.events, ev["event_id"].(string))
	}
	res := want[ingestJSON](t, m.do(t, "POST", "/v1/events", m.admin, map[string]any{"events": events}), 202)
	if res.Accepted != 3 {
		t.Fatalf("ingest: %+v", res)
	}
	return f
}

func (f reportFixture) usage(query url.Values) string {
	if f.day.IsZero() {
		panic("no fixture")
	}
	if !query.Has("from") {
		query.Set("from", f.day.Format(time.RFC3339))
		query.Set("to", f.day.AddDate(0, 0, 2).Format(time.RFC3339))
	}
	return "/v1/customers/" + f.customer + "/usage?" + query.Encode()
}

func TestUsageGroupBy(t *testing.T) {
	m := newMeteringEnv(t)
	f := newReportFixture(t, m)
	u := want[reportJSON](t, m.do(t, "GET", f.usage(url.Values{"meter": {f.meter.Code}, "group_by": {"model"}, "window": {"day"}}), m.admin, nil), 200)
	if u.Total != "3500" || u.Amount != "0.009" || u.Amounts["CREDITS"] != "0.009" || u.GroupBy != "model" || len(u.Series) != 1 {
		t.Fatalf("usage: %+v", u)
	}
	if p := u.Series[0]; !p.Start.Equal(f.day) || !p.End.Equal(f.day.AddDate(0, 0, 1)) || p.Quantity != "3500" {
		t.Errorf("day bucket %+v", p)
	}
	if len(u.Groups) != 2 || u.Groups[0].Value != "gpt" || u.Groups[1].Value != "other" {
		t.Fatalf("groups %+v, want gpt and other", u.Groups)
	}
	gpt, other := u.Groups[0], u.Groups[1]
	if gpt.Total != "3000" || gpt.Amount != "0.009" || gpt.Amounts["CREDITS"] != "0.009" || len(gpt.Series) != 1 || gpt.Series[0].Quantity != "3000" {
		t.Errorf("gpt: %+v", gpt)
	}
	if other.Total != "500" || other.Amount != "0" || len(other.Amounts) != 0 {
		t.Errorf("other: %+v", other)
	}

	// Hourly: one bucket per event, per group.
	u = want[reportJSON](t, m.do(t, "GET", f.usage(url.Values{"meter": {f.meter.Code}, "group_by": {"model"}}), m.admin, nil), 200)
	if len(u.Series) != 3 || len(u.Groups[0].Series) != 2 || u.Groups[0].Series[1].Amount != "0.006" ||
		!u.Groups[0].Series[1].Start.Equal(f.day.Add(10*time.Hour)) {
		t.Errorf("hourly: %+v", u)
	}

	// A month window: the calendar month's bucket.
	u = want[reportJSON](t, m.do(t, "GET", f.usage(url.Values{"meter": {f.meter.Code}, "window": {"month"}}), m.admin, nil), 200)
	month := time.Date(f.day.Year(), f.day.Month(), 1, 0, 0, 0, 0, time.UTC)
	if len(u.Series) < 1 || !u.Series[0].Start.Equal(month) || !u.Series[0].End.Equal(month.AddDate(0, 1, 0)) {
		t.Errorf("month: %+v", u.Series)
	}

	// A property the meter does not group by.
	wantField(t, wantProblem(t, m.do(t, "GET", f.usage(url.Values{"meter": {f.meter.Code}, "group_by": {"region"}}), m.admin, nil), 422, problem.Validation), "group_by")
}

func TestUsageSeveralMeters(t *testing.T) {
	m := newMeteringEnv(t)
	f := newReportFixture(t, m)
	count := want[meterJSON](t, m.do(t, "POST", "/v1/meters", m.admin, map[string]any{
		"code": uniq("calls"), "event_name": f.meter.EventName, "aggregation": "count"}), 201)
	ts := f.day.Add(12 * time.Hour)
	want[ingestJSON](t, m.do(t, "POST", "/v1/events", m.admin, map[string]any{"events": []any{
		tokenEvent(uniq("rep"), f.customer, f.meter.EventName, 1, &ts)}}), 202)

	l := want[reportListJSON](t, m.do(t, "GET", f.usage(url.Values{"meter": {count.Code + "," + f.meter.Code}, "window": {"day"}}), m.admin, nil), 200)
	if len(l.Data) != 2 || l.Data[0].Meter != count.Code || l.Data[1].Meter != f.meter.Code || l.Window != "day" {
		t.Fatalf("two meters: %+v", l)
	}
	if l.Data[0].Total != "1" || l.Data[1].Total != "3501" {
		t.Errorf("totals %s, %s; want 1 and 3501", l.Data[0].Total, l.Data[1].Total)
	}
	// No meter: every meter, by code, this customer's usage in each.
	l = want[reportListJSON](t, m.do(t, "GET", f.usage(url.Values{"window": {"day"}}), m.admin, nil), 200)
	codes := []string{}
	for _, u := range l.Data {
		codes = append(codes, u.Meter)
	}
	if !slices.IsSorted(codes) || !slices.Contains(codes, count.Code) || !slices.Contains(codes, f.meter.Code) {
		t.Errorf("all meters: %v", codes)
	}
	// A portal token of another customer hears nothing of it.
	other := m.newWallet(t, nil)
	wantProblem(t, m.do(t, "GET", f.usage(url.Values{}), m.key(t, apikey.Portal, other.customer), nil), 404, problem.NotFound)
}

func TestUsageCSV(t *testing.T) {
	m := newMeteringEnv(t)
	f := newReportFixture(t, m)
	for _, how := range []struct {
		query  url.Values
		accept string
	}{
		{url.Values{"meter": {f.meter.Code}, "group_by": {"model"}, "window": {"day"}, "format": {"csv"}}, ""},
		{url.Values{"meter": {f.meter.Code}, "group_by": {"model"}, "window": {"day"}}, "text/csv"},
	} {
		r := m.doH(t, "GET", f.usage(how.query), m.admin, map[string]string{"Accept": how.accept}, nil)
		if r.status != 200 || r.header.Get("Content-Type") != "text/csv; charset=utf-8" ||
			r.header.Get("Content-Disposition") != `attachment; filename="usage-`+f.customer+`.csv"` {
			t.Fatalf("csv: %d %v\n%s", r.status, r.header, r.body)
		}
		rows, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		start, end := f.day.Format(time.RFC3339), f.day.AddDate(0, 0, 1).Format(time.RFC3339)
		wantRows := [][]string{
			{"meter", "group", "bucket_start", "bucket_end", "quantity", "amount", "asset"},
			{f.meter.Code, "gpt", start, end, "3000", "0.009", "CREDITS"},
			{f.meter.Code, "other", start, end, "500", "0", ""},
		}
		if !slices.EqualFunc(rows, wantRows, slices.Equal) {
			t.Errorf("csv rows:\n%q\nwant\n%q", rows, wantRows)
		}
	}
	// JSON asked first wins over CSV.
	r := m.doH(t, "GET", f.usage(url.Values{"meter": {f.meter.Code}}), m.admin, map[string]string{"Accept": "application/json, text/csv"}, nil)
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("Accept: application/json, text/csv answered %s", r.header.Get("Content-Type"))
	}
}

// Without from and to, a report covers the current billing period: the
// wallet's cycle here (a subscription's period: metering's TestPeriod),
// the calendar month for a customer without a wallet.
func TestUsageDefaultPeriod(t *testing.T) {
	m := newMeteringEnv(t)
	f := newReportFixture(t, m)
	var created time.Time
	if err := m.db.Pool.QueryRow(t.Context(), `SELECT created_at FROM wallets WHERE id = $1`, f.wallet).Scan(&created); err != nil {
		t.Fatal(err)
	}
	start, end := wallet.Cycle(created, time.Now())
	u := want[reportJSON](t, m.do(t, "GET", "/v1/customers/"+f.customer+"/usage?meter="+f.meter.Code, m.admin, nil), 200)
	if !u.From.Equal(start) || !u.To.Equal(end) || u.Total != "0" {
		t.Errorf("default range [%s, %s) total %s; want the wallet's cycle [%s, %s), before which the events were", u.From, u.To, u.Total, start, end)
	}
	bare := m.newCustomer(t)
	u = want[reportJSON](t, m.do(t, "GET", "/v1/customers/"+bare+"/usage?meter="+f.meter.Code, m.admin, nil), 200)
	now := time.Now().UTC()
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	if !u.From.Equal(month) || !u.To.Equal(month.AddDate(0, 1, 0)) {
		t.Errorf("no wallet: [%s, %s), want the calendar month", u.From, u.To)
	}
}

func TestEventsAudit(t *testing.T) {
	m := newMeteringEnv(t)
	f := newReportFixture(t, m)
	e := want[storedEventJSON](t, m.do(t, "GET", "/v1/events/"+f.events[1], m.admin, nil), 200)
	if e.CustomerID != f.customer || e.Source != "http" || e.Properties["model"] != "gpt" || !e.Timestamp.Equal(f.day.Add(10*time.Hour)) || len(e.Charges) != 1 {
		t.Fatalf("event: %+v", e)
	}
	c := e.Charges[0]
	if c.Meter != f.meter.Code || c.Asset != "CREDITS" || c.Dimensions["model"] != "gpt" || c.Quantity != "2000" ||
		c.Amount != "0.006" || c.Covered != "0.001" || c.Overage != "0.005" {
		t.Errorf("charge %+v; want 2000 tokens for 0.006, 0.001 covered, 0.005 overage", c)
	}

	// Newest first, paged, filtered.
	list := "/v1/events?limit=2&customer_id=" + url.QueryEscape(f.customer)
	p := want[pageJSON[storedEventJSON]](t, m.do(t, "GET", list, m.admin, nil), 200)
	if len(p.Data) != 2 || p.Data[0].EventID != f.events[2] || p.Data[1].EventID != f.events[1] || p.NextCursor == nil {
		t.Fatalf("page 1: %+v", p)
	}
	p = want[pageJSON[storedEventJSON]](t, m.do(t, "GET", list+"&cursor="+url.QueryEscape(*p.NextCursor), m.admin, nil), 200)
	if len(p.Data) != 1 || p.Data[0].EventID != f.events[0] || p.NextCursor != nil {
		t.Fatalf("page 2: %+v", p)
	}
	window := "&from=" + f.day.Add(10*time.Hour).Format(time.RFC3339) + "&to=" + f.day.Add(11*time.Hour).Format(time.RFC3339)
	p = want[pageJSON[storedEventJSON]](t, m.do(t, "GET", list+window+"&event_name="+f.meter.EventName, m.admin, nil), 200)
	if len(p.Data) != 1 || p.Data[0].EventID != f.events[1] {
		t.Errorf("from/to: %+v", p)
	}
	if p := want[pageJSON[storedEventJSON]](t, m.do(t, "GET", list+"&event_name=nothing.like.it", m.admin, nil), 200); len(p.Data) != 0 {
		t.Errorf("event_name filter: %+v", p)
	}
	wantField(t, wantProblem(t, m.do(t, "GET", list+"&cursor=nonsense", m.admin, nil), 422, problem.Validation), "cursor")
	wantField(t, wantProblem(t, m.do(t, "GET", "/v1/events?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", m.admin, nil), 422, problem.Validation), "to")

	// Portal tokens: their own customer's only.
	mine := m.key(t, apikey.Portal, f.customer)
	other := m.newWallet(t, nil)
	theirs := m.key(t, apikey.Portal, other.customer)
	if p := want[pageJSON[storedEventJSON]](t, m.do(t, "GET", "/v1/events", mine, nil), 200); len(p.Data) != 3 {
		t.Errorf("portal without customer_id: %d events, want its 3", len(p.Data))
	}
	if p := want[pageJSON[storedEventJSON]](t, m.do(t, "GET", "/v1/events", theirs, nil), 200); len(p.Data) != 0 {
		t.Errorf("another customer's portal lists %d events", len(p.Data))
	}
	wantProblem(t, m.do(t, "GET", list, theirs, nil), 404, problem.NotFound)
	wantProblem(t, m.do(t, "GET", "/v1/events/"+f.events[0], theirs, nil), 404, problem.NotFound)
	want[storedEventJSON](t, m.do(t, "GET", "/v1/events/"+f.events[0], mine, nil), 200)
	wantProblem(t, m.do(t, "GET", "/v1/events/never-sent", m.admin, nil), 404, problem.NotFound)
	wantProblem(t, m.do(t, "GET", "/v1/events", m.key(t, apikey.Ingest, ""), nil), 403, problem.Forbidden)
}
