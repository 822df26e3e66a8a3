package api

import (
	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/webhook"
)

// WebhookRoutes are the webhook endpoint and delivery endpoints, for
// Config.Routes. All are admin only: endpoint URLs and delivery logs are
// operator business, and a new endpoint's response carries its secret.
func WebhookRoutes(svc *webhook.Service) []Route {
	h := &webhookHandlers{svc: svc}
	return []Route{
		POST("/webhook-endpoints", h.createWebhookEndpoint),
		GET("/webhook-endpoints", h.webhookEndpoints),
		GET("/webhook-endpoints/:id", h.webhookEndpoint),
		DELETE("/webhook-endpoints/:id", h.deleteWebhookEndpoint),
		POST("/webhook-endpoints/:id/enable", h.enableWebhookEndpoint),
		POST("/webhook-endpoints/:id/rotate-secret", h.rotateWebhookSecret),
		GET("/webhook-endpoints/:id/deliveries", h.webhookDeliveries),
		POST("/webhook-deliveries/:id/resend", h.resendWebhookDelivery),
	}
}

type webhookHandlers struct {
	svc *webhook.Service
}

// webhookIDParam reads a path id; one that is not a UUID names nothing.
func webhookIDParam(c *fiber.Ctx) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Params("id"))
	if err != nil {
		return id, fault.NotFoundf("webhook resource %q", c.Params("id"))
	}
	return id, nil
}

type createWebhookEndpointRequest struct {
	URL        string   `json:"url"`
	EventTypes []string `json:"event_types"`
}

// createdWebhookEndpoint is an endpoint with its secret, in the responses
// that show it: the one that created it, and the one that rotated it.
type createdWebhookEndpoint struct {
	webhook.Endpoint
	Secret string `json:"secret"`
}

func (h *webhookHandlers) createWebhookEndpoint(c *fiber.Ctx) error {
	var req createWebhookEndpointRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	e, secret, err := h.svc.CreateEndpoint(c.UserContext(), webhook.NewEndpoint{URL: req.URL, EventTypes: req.EventTypes})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(createdWebhookEndpoint{Endpoint: e, Secret: secret})
}

func (h *webhookHandlers) webhookEndpoints(c *fiber.Ctx) error {
	limit, cursor, err := PageQuery(c)
	if err != nil {
		return err
	}
	es, next, err := h.svc.Endpoints(c.UserContext(), cursor, limit)
	if err != nil {
		return err
	}
	return c.JSON(NewPage(es, next))
}

func (h *webhookHandlers) webhookEndpoint(c *fiber.Ctx) error {
	id, err := webhookIDParam(c)
	if err != nil {
		return err
	}
	e, err := h.svc.Endpoint(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(e)
}

func (h *webhookHandlers) deleteWebhookEndpoint(c *fiber.Ctx) error {
	id, err := webhookIDParam(c)
	if err != nil {
		return err
	}
	e, err := h.svc.DeleteEndpoint(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(e)
}

func (h *webhookHandlers) enableWebhookEndpoint(c *fiber.Ctx) error {
	id, err := webhookIDParam(c)
	if err != nil {
		return err
	}
	e, err := h.svc.EnableEndpoint(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(e)
}

type rotateWebhookSecretRequest struct {
	PreviousSecretExpiresInSeconds *int64 `json:"previous_secret_expires_in_seconds"`
}

// rotateWebhookSecret gives an endpoint a new secret, shown in this answer
// only; the old one keeps signing beside it for a day unless told
// otherwise.
func (h *webhookHandlers) rotateWebhookSecret(c *fiber.Ctx) error {
	id, err := webhookIDParam(c)
	if err != nil {
		return err
	}
	var req rotateWebhookSecretRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	overlap := webhook.DefaultSecretOverlap
	if n := req.PreviousSecretExpiresInSeconds; n != nil {
		overlap = seconds(*n) // the service refuses one out of its range
	}
	e, secret, err := h.svc.RotateSecret(c.UserContext(), id, overlap)
	if err != nil {
		return err
	}
	return c.JSON(createdWebhookEndpoint{Endpoint: e, Secret: secret})
}

func (h *webhookHandlers) webhookDeliveries(c *fiber.Ctx) error {
	id, err := webhookIDParam(c)
	if err != nil {
		return err
	}
	limit, cursor, err := PageQuery(c)
	if err != nil {
		return err
	}
	ds, next, err := h.svc.Deliveries(c.UserContext(), id, webhook.DeliveryQuery{
		Status: c.Query("status"), Cursor: cursor, Limit: limit,
	})
	if err != nil {
		return err
	}
	return c.JSON(NewPage(ds, next))
}

func (h *webhookHandlers) resendWebhookDelivery(c *fiber.Ctx) error {
	id, err := webhookIDParam(c)
	if err != nil {
		return err
	}
	d, err := h.svc.Resend(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(d)
}
