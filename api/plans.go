package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/creditledger/creditledger/api/problem"
	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/billing"
	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/metering"
)

// PlanRoutes are the plan and subscription endpoints, for Config.Routes.
// Plans are admin configuration that read keys may read; subscriptions
// move money (included credits, invoices), so only admin keys change them.
func PlanRoutes(svc *billing.Service) []Route {
	h := &planHandlers{svc: svc}
	return []Route{
		POST("/plans", h.createPlan),
		GET("/plans", h.plans).Allow(apikey.Read),
		GET("/plans/:code", h.plan).Allow(apikey.Read),
		POST("/plans/:code/versions", h.addVersion),
		POST("/plans/:code/archive", h.archivePlan),

		POST("/subscriptions", h.subscribe),
		GET("/subscriptions", h.subscriptions).Allow(apikey.Read),
		GET("/subscriptions/:id", h.subscription).Allow(apikey.Read),
		POST("/subscriptions/:id/change-plan", h.changePlan),
		POST("/subscriptions/:id/cancel", h.cancel),
		POST("/subscriptions/:id/close-period", h.closePeriod),
	}
}

type planHandlers struct {
	svc *billing.Service
}

// planRequest is the body of POST /plans and of a new version. Its prices
// are read one by one like POST /prices bodies.
type planRequest struct {
	Code              string                      `json:"code"`
	Name              string                      `json:"name"`
	Currency          string                      `json:"currency"`
	Interval          billing.Interval            `json:"interval"`
	BaseFee           *ledger.Amount              `json:"base_fee"`
	MinimumCommitment *ledger.Amount              `json:"minimum_commitment"`
	IncludedCredits   []billing.NewIncludedCredit `json:"included_credits"`
	OveragePolicy     string                      `json:"overage_policy"`
	Prices            []json.RawMessage           `json:"prices"`
	EffectiveAt       *time.Time                  `json:"effective_at"`
}

func (r planRequest) plan() (billing.NewPlan, error) {
	np := billing.NewPlan{Code: r.Code, Name: r.Name, Currency: r.Currency, Interval: r.Interval, BaseFee: r.BaseFee,
		MinimumCommitment: r.MinimumCommitment, IncludedCredits: r.IncludedCredits, OveragePolicy: r.OveragePolicy,
		EffectiveAt: r.EffectiveAt}
	prices, err := decodePrices("prices", r.Prices)
	np.Prices = prices
	return np, err
}

// decodePrices reads a list of prices as POST /prices takes them, none
// with an effective time of its own; an invalid one names its index.
func decodePrices(field string, raws []json.RawMessage) ([]metering.NewPrice, error) {
	if raws == nil {
		return nil, nil // absent: a new version keeps the prices it has
	}
	out := []metering.NewPrice{}
	for i, raw := range raws {
		np, err := decodePrice(raw)
		if err != nil {
			var p *problem.Error
			if errors.As(err, &p) && len(p.Fields) == 1 {
				return nil, problem.Invalid(fmt.Sprintf("%s[%d].%s", field, i, p.Fields[0].Field), p.Fields[0].Detail)
			}
			if f := fault.FieldOf(err); f != "" {
				var fe *fault.Error
				errors.As(err, &fe)
				return nil, problem.Invalid(fmt.Sprintf("%s[%d].%s", field, i, f), fe.Detail)
			}
			return nil, err
		}
		out = append(out, np)
	}
	return out, nil
}

func (h *planHandlers) createPlan(c *fiber.Ctx) error {
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	var req planRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	np, err := req.plan()
	if err != nil {
		return err
	}
	p, replayed, err := h.svc.CreatePlan(c.UserContext(), key, np)
	return created(c, p, replayed, err)
}

func (h *planHandlers) addVersion(c *fiber.Ctx) error {
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	var req planRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	if req.Code != "" {
		return problem.Invalid("code", "a version belongs to the plan in the path")
	}
	np, err := req.plan()
	if err != nil {
		return err
	}
	p, replayed, err := h.svc.AddVersion(c.UserContext(), c.Params("code"), key, np)
	return created(c, p, replayed, err)
}

func (h *planHandlers) plans(c *fiber.Ctx) error {
	ps, err := h.svc.Plans(c.UserContext())
	if err != nil {
		return err
	}
	// Configuration, returned whole, as meters and prices are.
	return c.JSON(NewPage(ps, ""))
}

func (h *planHandlers) plan(c *fiber.Ctx) error {
	n := 0
	if v := c.Query("version"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			return problem.Invalid("version", "a version number, from 1")
		}
	}
	p, err := h.svc.Plan(c.UserContext(), c.Params("code"), n)
	if err != nil {
		return err
	}
	return c.JSON(p)
}

func (h *planHandlers) archivePlan(c *fiber.Ctx) error {
	p, err := h.svc.ArchivePlan(c.UserContext(), c.Params("code"))
	if err != nil {
		return err
	}
	return c.JSON(p)
}

// Subscriptions.

type subscribeRequest struct {
	CustomerID     string            `json:"customer_id"`
	PlanCode       string            `json:"plan_code"`
	StartAt        *time.Time        `json:"start_at"`
	PriceOverrides []json.RawMessage `json:"price_overrides"`
	OverageLimit   *ledger.Amount    `json:"overage_limit"`
}

func (h *planHandlers) subscribe(c *fiber.Ctx) error {
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	var req subscribeRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	overrides, err := decodePrices("price_overrides", req.PriceOverrides)
	if err != nil {
		return err
	}
	res, err := h.svc.Subscribe(c.UserContext(), key, billing.NewSubscription{CustomerID: req.CustomerID, PlanCode: req.PlanCode,
		StartAt: req.StartAt, PriceOverrides: overrides, OverageLimit: req.OverageLimit})
	return respond(c, fiber.StatusCreated, res.JSON, res.Replayed, err)
}

func (h *planHandlers) subscriptions(c *fiber.Ctx) error {
	customer := c.Query("customer_id")
	if customer == "" {
		return problem.Invalid("customer_id", "required")
	}
	subs, err := h.svc.Subscriptions(c.UserContext(), customer)
	if err != nil {
		return err
	}
	return c.JSON(NewPage(subs, ""))
}

func (h *planHandlers) subscription(c *fiber.Ctx) error {
	id, err := uuidParam(c, "id")
	if err != nil {
		return err
	}
	sub, err := h.svc.Subscription(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(sub)
}

type changePlanRequest struct {
	PlanCode string `json:"plan_code"`
	At       string `json:"at"`
}

func (h *planHandlers) changePlan(c *fiber.Ctx) error {
	id, err := uuidParam(c, "id")
	if err != nil {
		return err
	}
	var req changePlanRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	if req.PlanCode == "" {
		return problem.Invalid("plan_code", "required")
	}
	sub, err := h.svc.ChangePlan(c.UserContext(), id, req.PlanCode, req.At)
	if err != nil {
		return err
	}
	return c.JSON(sub)
}

type cancelRequest struct {
	AtPeriodEnd *bool `json:"at_period_end"`
}

func (h *planHandlers) cancel(c *fiber.Ctx) error {
	id, err := uuidParam(c, "id")
	if err != nil {
		return err
	}
	var req cancelRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	sub, err := h.svc.Cancel(c.UserContext(), id, req.AtPeriodEnd == nil || *req.AtPeriodEnd)
	if err != nil {
		return err
	}
	return c.JSON(sub)
}

func (h *planHandlers) closePeriod(c *fiber.Ctx) error {
	return idempotent(c, fiber.StatusCreated, uuid.Parse,
		func(ctx context.Context, _ string, id uuid.UUID, _ noBody) (ledger.Result[billing.Invoice], error) {
			return h.svc.ClosePeriod(ctx, id)
		})
}

// created answers a resource a POST made (201), marked when a retry with
// the same Idempotency-Key replays it.
func created(c *fiber.Ctx, v any, replayed bool, err error) error {
	if err != nil {
		return err
	}
	if replayed {
		c.Set(HeaderIdempotentReplayed, "true")
	}
	return c.Status(fiber.StatusCreated).JSON(v)
}
