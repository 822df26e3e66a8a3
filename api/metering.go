package api

import (
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/creditledger/creditledger/api/auth"
	"github.com/creditledger/creditledger/api/problem"
	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/pricing"
)

// MeteringRoutes are the meter, price, event and usage endpoints, for
// Config.Routes. Meters and prices are admin configuration; ingest keys may
// only send events; read keys read everything; portal tokens read their own
// customer's usage and rejected events.
func MeteringRoutes(svc *metering.Service) []Route {
	h := &meteringHandlers{svc: svc}
	return []Route{
		POST("/meters", h.createMeter),
		GET("/meters", h.meters).Allow(apikey.Read),
		GET("/meters/:code", h.meter).Allow(apikey.Read),
		POST("/meters/:code/archive", h.archiveMeter),

		POST("/prices", h.createPrice),
		GET("/prices", h.prices).Allow(apikey.Read),
		POST("/prices/:id/archive", h.archivePrice),

		POST("/events", h.ingest).Allow(apikey.Ingest).Accepting(metering.CloudEventType, metering.CloudEventBatchType),
		GET("/events/rejected", h.rejected).Allow(apikey.Read, apikey.Portal),
		GET("/events", h.events).Allow(apikey.Read, apikey.Portal),          // reports.go
		GET("/events/:event_id", h.event).Allow(apikey.Read, apikey.Portal), // after /events/rejected

		GET("/customers/:id/usage", h.usage).Allow(apikey.Read, apikey.Portal),
	}
}

type meteringHandlers struct {
	svc *metering.Service
}

// Meters.

// createMeterRequest is metering.Meter without the fields the server sets,
// so that a client sending "id" or "created_at" hears that it cannot.
type createMeterRequest struct {
	Code        string               `json:"code"`
	EventName   string               `json:"event_name"`
	Aggregation metering.Aggregation `json:"aggregation"`
	Property    string               `json:"property"`
	Filters     map[string][]string  `json:"filters"`
	GroupBy     []string             `json:"group_by"`
}

func (h *meteringHandlers) createMeter(c *fiber.Ctx) error {
	var req createMeterRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	m, err := h.svc.CreateMeter(c.UserContext(), metering.Meter{
		Code: req.Code, EventName: req.EventName, Aggregation: req.Aggregation,
		Property: req.Property, Filters: req.Filters, GroupBy: req.GroupBy,
	})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(m)
}

func (h *meteringHandlers) meters(c *fiber.Ctx) error {
	ms, err := h.svc.Meters(c.UserContext())
	if err != nil {
		return err
	}
	// Meters are configuration, a handful per deployment, and the service
	// returns them all: the page is always the last one.
	return c.JSON(NewPage(ms, ""))
}

func (h *meteringHandlers) meter(c *fiber.Ctx) error {
	m, err := h.svc.Meter(c.UserContext(), c.Params("code"))
	if err != nil {
		return err
	}
	return c.JSON(m)
}

// archiveMeter stops a meter counting new events; archiving it again
// answers it as it is.
func (h *meteringHandlers) archiveMeter(c *fiber.Ctx) error {
	var req noBody
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	m, err := h.svc.ArchiveMeter(c.UserContext(), c.Params("code"))
	if err != nil {
		return err
	}
	return c.JSON(m)
}

// Prices.

// priceKeys are the keys of POST /prices besides the price model's own.
var priceKeys = []string{"meter_code", "asset", "effective_at"}

func (h *meteringHandlers) createPrice(c *fiber.Ctx) error {
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	np, err := decodePrice(c.Body())
	if err != nil {
		return err
	}
	p, replayed, err := h.svc.CreatePrice(c.UserContext(), key, np)
	return created(c, p, replayed, err)
}

// decodePrice reads the body of POST /prices: the price model's JSON with
// two keys of our own beside it. pricing decodes (and validates) its part
// and ignores other keys, so unknown keys are refused here, where all the
// allowed ones are known: a misspelt "free_unit" must not silently price
// from zero. decodeBody has refused duplicate and case-variant keys at
// every depth, so pricing's exact-key reading sees the one value sent.
func decodePrice(body []byte) (metering.NewPrice, error) {
	var obj map[string]json.RawMessage
	if err := decodeBody(body, &obj); err != nil {
		return metering.NewPrice{}, err
	}
	allowed := append(pricing.JSONFields(), priceKeys...)
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		if !slices.Contains(allowed, k) {
			return metering.NewPrice{}, problem.Invalid(k, "unknown field")
		}
	}
	meterCode, err := stringField(obj, "meter_code")
	if err != nil {
		return metering.NewPrice{}, err
	}
	asset, err := stringField(obj, "asset")
	if err != nil {
		return metering.NewPrice{}, err
	}
	var spec pricing.Price
	if err := json.Unmarshal(body, &spec); err != nil {
		return metering.NewPrice{}, err // a fault.Invalid naming the field
	}
	np := metering.NewPrice{MeterCode: meterCode, Asset: asset, Price: spec}
	if raw, ok := obj["effective_at"]; ok && string(raw) != "null" {
		var t time.Time
		if err := json.Unmarshal(raw, &t); err != nil {
			return metering.NewPrice{}, problem.Invalid("effective_at", "must be an RFC 3339 time")
		}
		t = t.UTC()
		np.EffectiveAt = &t
	}
	return np, nil
}

// prices answers the default book's prices in force at ?at= (default now),
// filtered by ?meter_code= and ?asset=.
func (h *meteringHandlers) prices(c *fiber.Ctx) error {
	at, err := timeQuery(c, "at", time.Now())
	if err != nil {
		return err
	}
	ps, err := h.svc.Prices(c.UserContext(), metering.PriceFilter{MeterCode: c.Query("meter_code"), Asset: c.Query("asset"), At: at})
	if err != nil {
		return err
	}
	// As with meters: configuration, returned whole.
	return c.JSON(NewPage(ps, ""))
}

func (h *meteringHandlers) archivePrice(c *fiber.Ctx) error {
	id, err := uuidParam(c, "id")
	if err != nil {
		return err
	}
	p, err := h.svc.ArchivePrice(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(p)
}

// stringField reads a required string member of a decoded object. null
// counts as absent, as it does for the price model's fields.
func stringField(obj map[string]json.RawMessage, name string) (string, error) {
	raw, ok := obj[name]
	if !ok || string(raw) == "null" {
		return "", problem.Invalid(name, "required")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", problem.Invalid(name, "must be a JSON string")
	}
	if s == "" {
		return "", problem.Invalid(name, "required")
	}
	return s, nil
}

// Events.

// ingestRequest keeps each event raw: the service parses them one by one,
// so one malformed event is rejected on its own instead of failing the
// batch. Only JSON that does not parse at all fails the whole request.
type ingestRequest struct {
	// Not looked into by DecodeJSON: metering.ParseEvent checks each event,
	// so that one with a duplicate key is rejected on its own.
	Events []json.RawMessage `json:"events" strictjson:"-"`
}

func (h *meteringHandlers) ingest(c *fiber.Ctx) error {
	events, cloud, err := decodeIngest(c) // JSON or CloudEvents (cloudevents.go)
	if err != nil {
		return err
	}
	opts := metering.IngestOptions{Source: "http"}
	if cloud {
		opts.CloudEvent = func(int) bool { return true }
	}
	if caller, ok := auth.From(c); ok && caller.Scope == apikey.Ingest {
		// A key bound to one customer sends only that customer's events.
		opts.Customer = caller.CustomerID
	}
	res, err := h.svc.Ingest(c.UserContext(), events, opts)
	if err != nil {
		if pg.KindOf(err) == fault.Unavailable {
			// Which events were applied is unknown to the client: it
			// resends the whole batch, which is safe, because events are
			// deduplicated by event_id. A refused event is never here: it
			// is listed under "rejected" with its reason.
			return &problem.Error{Code: problem.Unavailable, Cause: err, RetryAfter: ingestRetryAfter,
				Detail: "events could not be stored; send the whole batch again"}
		}
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(res)
}

// ingestRetryAfter is what a client is told to wait before resending a
// batch the database could not take.
const ingestRetryAfter = 5 * time.Second

func (h *meteringHandlers) rejected(c *fiber.Ctx) error {
	customer := c.Query("customer_id")
	// A portal token sees only its own customer's rejections, and must ask
	// for them by id: without one it would list everyone's.
	if err := auth.RequireCustomer(c, customer); err != nil {
		return err
	}
	limit, cursor, err := PageQuery(c)
	if err != nil {
		return err
	}
	rs, next, err := h.svc.Rejections(c.UserContext(), customer, cursor, limit)
	if err != nil {
		return err
	}
	return c.JSON(NewPage(rs, next))
}

// Usage: see reports.go.

// timeQuery reads an RFC 3339 query parameter, or returns def if it is
// absent.
func timeQuery(c *fiber.Ctx, name string, def time.Time) (time.Time, error) {
	s := c.Query(name)
	if s == "" {
		return def.UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, problem.Invalid(name, "must be an RFC 3339 timestamp, e.g. 2025-01-31T23:59:59Z")
	}
	return t.UTC(), nil
}
