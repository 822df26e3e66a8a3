package api

import (
	"bytes"
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/creditledger/creditledger/api/auth"
	"github.com/creditledger/creditledger/api/problem"
	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/billing"
	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/ledger"
)

// An invoice's life (paid, void), its list filters, its printable form and
// the upcoming invoice. Routes: InvoiceRoutes.

func (h *invoiceHandlers) markPaid(c *fiber.Ctx) error {
	return idempotent(c, fiber.StatusOK, billing.ParseInvoiceID,
		func(ctx context.Context, key string, id billing.InvoiceID, req billing.MarkPaid) (ledger.Result[billing.Invoice], error) {
			return h.svc.MarkPaid(ctx, key, id, req)
		})
}

func (h *invoiceHandlers) void(c *fiber.Ctx) error {
	return idempotent(c, fiber.StatusOK, billing.ParseInvoiceID,
		func(ctx context.Context, key string, id billing.InvoiceID, req billing.VoidInvoice) (ledger.Result[billing.Invoice], error) {
			return h.svc.Void(ctx, key, id, req)
		})
}

// invoiceFilter reads GET /v1/invoices' filters. Without customer_id the
// list is every customer's — except for a portal token, whose list is
// always its own customer's.
func invoiceFilter(c *fiber.Ctx) (billing.InvoiceFilter, error) {
	f := billing.InvoiceFilter{CustomerID: c.Query("customer_id"), Status: c.Query("status")}
	if caller, ok := auth.From(c); ok && caller.Scope == apikey.Portal && f.CustomerID == "" {
		if caller.CustomerID == "" {
			return f, fault.NotFoundf("a portal key bound to no customer")
		}
		f.CustomerID = caller.CustomerID
	}
	if f.CustomerID != "" {
		if err := auth.RequireCustomer(c, f.CustomerID); err != nil {
			return f, err
		}
	}
	for _, q := range []struct {
		name string
		dst  **time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		s := c.Query(q.name)
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return f, problem.Invalid(q.name, "must be an RFC 3339 timestamp, e.g. 2026-01-01T00:00:00Z")
		}
		*q.dst = &t
	}
	return f, nil
}

// wantsHTML reports whether GET /v1/invoices/{id} is asked for the
// printable page: ?format=html, or an Accept header preferring text/html
// to JSON (a browser). ?format=json asks for JSON whatever Accept says.
func wantsHTML(c *fiber.Ctx) (bool, error) {
	switch c.Query("format") {
	case "html":
		return true, nil
	case "json":
		return false, nil
	case "":
		c.Vary(fiber.HeaderAccept)
		return c.Accepts(fiber.MIMEApplicationJSON, fiber.MIMETextHTML) == fiber.MIMETextHTML, nil
	}
	return false, problem.Invalid("format", "must be json or html")
}

func (h *invoiceHandlers) sendHTML(c *fiber.Ctx, inv billing.Invoice, err error) error {
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := h.svc.WriteHTML(c.UserContext(), &buf, inv); err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Send(buf.Bytes())
}

// upcoming answers what closing the customer's cycles now would issue:
// provisional invoices (status "upcoming", number null), nothing stored.
func (h *invoiceHandlers) upcoming(c *fiber.Ctx) error {
	id := c.Params("id")
	if err := auth.RequireCustomer(c, id); err != nil {
		return err
	}
	invs, err := h.svc.Upcoming(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(upcomingInvoices{Data: invs})
}

// upcomingInvoices is the upcoming invoices: one list, never paged.
type upcomingInvoices struct {
	Data []billing.Invoice `json:"data"`
}
