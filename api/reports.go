package api

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"mime"
	"sort"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/creditledger/creditledger/api/auth"
	"github.com/creditledger/creditledger/api/problem"
	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
)

// Usage reports.

// usageJSON is metering.Usage on the wire. Quantities are written as
// strings here rather than by decimal.Decimal's MarshalJSON, which writes
// numbers if a program sets decimal.MarshalJSONWithoutQuotes: exact values
// must not go through a client's float.
type usageJSON struct {
	Meter   string            `json:"meter"`
	From    time.Time         `json:"from"`
	To      time.Time         `json:"to"`
	Window  metering.Window   `json:"window"`
	Series  []usagePointJSON  `json:"series"`
	Total   string            `json:"total"`
	Amount  string            `json:"amount"`
	Amounts map[string]string `json:"amounts"`
	GroupBy *string           `json:"group_by,omitempty"`
	Groups  []usageGroupJSON  `json:"groups,omitempty"`
}

type usagePointJSON struct {
	Start    time.Time         `json:"start"`
	End      time.Time         `json:"end"`
	Quantity string            `json:"quantity"`
	Amount   string            `json:"amount"`
	Amounts  map[string]string `json:"amounts"`
}

type usageGroupJSON struct {
	Value   string            `json:"value"`
	Series  []usagePointJSON  `json:"series"`
	Total   string            `json:"total"`
	Amount  string            `json:"amount"`
	Amounts map[string]string `json:"amounts"`
}

// usageListJSON answers several meters: one usageJSON each, in the list
// shape of every other list (data), with the range they share.
type usageListJSON struct {
	From   time.Time       `json:"from"`
	To     time.Time       `json:"to"`
	Window metering.Window `json:"window"`
	Data   []usageJSON     `json:"data"`
}

func amountsJSON(m map[string]ledger.Amount) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v.String()
	}
	return out
}

func seriesJSON(ps []metering.UsagePoint) []usagePointJSON {
	out := make([]usagePointJSON, len(ps))
	for i, p := range ps {
		out[i] = usagePointJSON{Start: p.Start, End: p.End, Quantity: p.Quantity.String(), Amount: p.Amount.String(), Amounts: amountsJSON(p.Amounts)}
	}
	return out
}

func toUsageJSON(u metering.Usage) usageJSON {
	out := usageJSON{Meter: u.Meter, From: u.From, To: u.To, Window: u.Window, Series: seriesJSON(u.Series),
		Total: u.Total.String(), Amount: u.Amount.String(), Amounts: amountsJSON(u.Amounts)}
	if u.GroupBy != "" {
		out.GroupBy = &u.GroupBy
		out.Groups = make([]usageGroupJSON, len(u.Groups))
		for i, g := range u.Groups {
			out.Groups[i] = usageGroupJSON{Value: g.Value, Series: seriesJSON(g.Series), Total: g.Total.String(),
				Amount: g.Amount.String(), Amounts: amountsJSON(g.Amounts)}
		}
	}
	return out
}

// usage answers GET /customers/{id}/usage. One meter (?meter=code) is
// answered as it always was, one usage object, with fields added; several
// (?meter=a,b) or all (no meter) are answered as a list, {"data": [...]}:
// the shape follows the request, never the number of meters that exist,
// so a client asking for one meter keeps its type.
func (h *meteringHandlers) usage(c *fiber.Ctx) error {
	id := c.Params("id")
	if err := auth.RequireCustomer(c, id); err != nil {
		return err
	}
	csvOut, err := wantsCSV(c)
	if err != nil {
		return err
	}
	c.Vary(fiber.HeaderAccept) // one URL, two representations: caches must tell them apart
	var meters []string
	param := c.Query("meter")
	for _, code := range strings.Split(param, ",") {
		if code = strings.TrimSpace(code); code != "" {
			meters = append(meters, code)
		}
	}
	if param != "" && len(meters) == 0 {
		return problem.Invalid("meter", "a meter code, or several separated by commas")
	}
	var from, to time.Time // zero: the current billing period's
	if c.Query("from") != "" {
		if from, err = timeQuery(c, "from", time.Time{}); err != nil {
			return err
		}
	}
	if c.Query("to") != "" {
		if to, err = timeQuery(c, "to", time.Time{}); err != nil {
			return err
		}
	}
	q := metering.UsageQuery{Customer: id, Meters: meters, From: from, To: to,
		Window: metering.Window(c.Query("window", string(metering.Hour))), GroupBy: c.Query("group_by")}
	us, err := h.svc.UsageReport(c.UserContext(), q)
	if err != nil {
		return err
	}
	if csvOut {
		return usageCSV(c, id, us)
	}
	if len(meters) == 1 {
		return c.JSON(toUsageJSON(us[0]))
	}
	out := usageListJSON{Window: q.Window, Data: make([]usageJSON, len(us))}
	for i, u := range us {
		out.Data[i] = toUsageJSON(u)
	}
	if len(us) > 0 {
		out.From, out.To = us[0].From, us[0].To
	} else if out.From, out.To, err = h.svc.Period(c.UserContext(), id, time.Now()); err != nil {
		return err
	} else if !from.IsZero() || !to.IsZero() {
		out.From, out.To = orDefault(from, out.From), orDefault(to, out.To)
	}
	return c.JSON(out)
}

func orDefault(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}

// wantsCSV reads ?format=csv|json, else the Accept header: text/csv
// wins only when the client asks for it and not for JSON first.
func wantsCSV(c *fiber.Ctx) (bool, error) {
	switch f := c.Query("format"); f {
	case "csv":
		return true, nil
	case "json":
		return false, nil
	case "":
	default:
		return false, problem.Invalid("format", "must be json or csv")
	}
	for _, part := range strings.Split(c.Get(fiber.HeaderAccept), ",") {
		typ, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch typ {
		case "text/csv":
			return true, nil
		case "application/json", "*/*":
			return false, nil
		}
	}
	return false, nil
}

// usageCSV writes the report as CSV: a header row, then one row per meter,
// group value, bucket and asset, with exact decimals. A meter priced in one
// asset has one row per bucket and group; each row of a meter priced in two
// carries the bucket's quantity and that asset's amount. A bucket without a
// charge (an unpriced meter) has one row with an empty asset.
func usageCSV(c *fiber.Ctx, customer string, us []metering.Usage) error {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"meter", "group", "bucket_start", "bucket_end", "quantity", "amount", "asset"})
	rows := func(meter, group string, series []metering.UsagePoint) {
		for _, p := range series {
			start, end := p.Start.Format(time.RFC3339), p.End.Format(time.RFC3339)
			if len(p.Amounts) == 0 {
				_ = w.Write([]string{meter, group, start, end, p.Quantity.String(), "0", ""})
			}
			assets := make([]string, 0, len(p.Amounts))
			for a := range p.Amounts {
				assets = append(assets, a)
			}
			sort.Strings(assets)
			for _, a := range assets {
				_ = w.Write([]string{meter, group, start, end, p.Quantity.String(), p.Amounts[a].String(), a})
			}
		}
	}
	for _, u := range us {
		if u.GroupBy == "" {
			rows(u.Meter, "", u.Series)
			continue
		}
		for _, g := range u.Groups {
			rows(u.Meter, g.Value, g.Series)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="usage-`+fileSafe(customer)+`.csv"`)
	return c.Send(buf.Bytes())
}

// fileSafe keeps the characters of a customer id a file name and a quoted
// header value take everywhere.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, s)
}

// Events audit.

// eventJSON is metering.StoredEvent on the wire, decimals as strings.
type eventJSON struct {
	EventID    string            `json:"event_id"`
	CustomerID string            `json:"customer_id"`
	EventName  string            `json:"event_name"`
	Timestamp  time.Time         `json:"timestamp"`
	Properties json.RawMessage   `json:"properties"`
	ReceivedAt time.Time         `json:"received_at"`
	Source     string            `json:"source"`
	Misses     json.RawMessage   `json:"misses"`
	Charges    []eventChargeJSON `json:"charges"`
}

type eventChargeJSON struct {
	Meter      string          `json:"meter"`
	Asset      string          `json:"asset"`
	Dimensions json.RawMessage `json:"dimensions"`
	Quantity   string          `json:"quantity"`
	Amount     string          `json:"amount"`
	Covered    string          `json:"covered"`
	Overage    string          `json:"overage"`
}

func toEventJSON(e metering.StoredEvent) eventJSON {
	out := eventJSON{EventID: e.EventID, CustomerID: e.CustomerID, EventName: e.EventName, Timestamp: e.Timestamp,
		Properties: e.Properties, ReceivedAt: e.ReceivedAt, Source: e.Source, Misses: e.Misses,
		Charges: make([]eventChargeJSON, len(e.Charges))}
	for i, ch := range e.Charges {
		out.Charges[i] = eventChargeJSON{Meter: ch.Meter, Asset: ch.Asset, Dimensions: ch.Dimensions,
			Quantity: ch.Quantity.String(), Amount: ch.Amount.String(), Covered: ch.Covered.String(), Overage: ch.Overage.String()}
	}
	return out
}

// events lists applied events, newest first. A portal token lists its own
// customer's: without customer_id it gets them, with another's a 404.
func (h *meteringHandlers) events(c *fiber.Ctx) error {
	f := metering.EventFilter{Customer: c.Query("customer_id"), EventName: c.Query("event_name")}
	if caller, ok := auth.From(c); ok && caller.Scope == apikey.Portal && f.Customer == "" {
		f.Customer = caller.CustomerID
	}
	if err := auth.RequireCustomer(c, f.Customer); err != nil {
		return err
	}
	var err error
	if c.Query("from") != "" {
		if f.From, err = timeQuery(c, "from", time.Time{}); err != nil {
			return err
		}
	}
	if c.Query("to") != "" {
		if f.To, err = timeQuery(c, "to", time.Time{}); err != nil {
			return err
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From) {
		return problem.Invalid("to", "must be after from")
	}
	limit, cursor, err := PageQuery(c)
	if err != nil {
		return err
	}
	evs, next, err := h.svc.Events(c.UserContext(), f, cursor, limit)
	if err != nil {
		return err
	}
	out := make([]eventJSON, len(evs))
	for i, e := range evs {
		out[i] = toEventJSON(e)
	}
	return c.JSON(NewPage(out, next))
}

// event answers one applied event with its charges; a portal token reads
// only its customer's (another's is a 404, as an unknown id is).
func (h *meteringHandlers) event(c *fiber.Ctx) error {
	only := ""
	if caller, ok := auth.From(c); ok && caller.Scope == apikey.Portal {
		only = caller.CustomerID
	}
	e, err := h.svc.Event(c.UserContext(), c.Params("event_id"), only)
	if err != nil {
		return err
	}
	if err := auth.RequireCustomer(c, e.CustomerID); err != nil {
		return err
	}
	return c.JSON(toEventJSON(e))
}
