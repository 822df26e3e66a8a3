package api

import (
	"context"

	"github.com/gofiber/fiber/v2"

	"github.com/creditledger/creditledger/api/auth"
	"github.com/creditledger/creditledger/api/problem"
	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/billing"
	"github.com/creditledger/creditledger/internal/cursor"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

// InvoiceRoutes are the billing cycle and invoice endpoints. Closing is
// admin only; reads are open to read keys and to the customer's portal
// tokens.
func InvoiceRoutes(svc *billing.Service) []Route {
	h := &invoiceHandlers{svc: svc}
	return []Route{
		POST("/wallets/:id/close-cycle", h.closeCycle),
		GET("/invoices", h.invoices).Allow(apikey.Read, apikey.Portal),
		GET("/invoices/:id", h.invoice).Allow(apikey.Read, apikey.Portal),
		POST("/invoices/:id/mark-paid", h.markPaid),
		POST("/invoices/:id/void", h.void),
		GET("/customers/:id/upcoming-invoice", h.upcoming).Allow(apikey.Read, apikey.Portal),
	}
}

type invoiceHandlers struct {
	svc *billing.Service
}

func (h *invoiceHandlers) closeCycle(c *fiber.Ctx) error {
	return idempotent(c, fiber.StatusCreated, wallet.ParseWalletID,
		func(ctx context.Context, _ string, id wallet.WalletID, _ noBody) (ledger.Result[billing.Invoice], error) {
			return h.svc.CloseCycle(ctx, id)
		})
}

func (h *invoiceHandlers) invoices(c *fiber.Ctx) error {
	f, err := invoiceFilter(c)
	if err != nil {
		return err
	}
	limit, after, err := pageAfter(c)
	if err != nil {
		return err
	}
	invs, next, err := h.svc.ListInvoices(c.UserContext(), f, after, limit)
	if err != nil {
		return err
	}
	return c.JSON(NewPage(invs, cursor.Next(next)))
}

func (h *invoiceHandlers) invoice(c *fiber.Ctx) error {
	id, err := billing.ParseInvoiceID(c.Params("id"))
	if err != nil {
		return problem.New(problem.NotFound, notFoundDetail)
	}
	inv, err := h.svc.Invoice(c.UserContext(), id)
	if err != nil {
		return err
	}
	if err := auth.RequireCustomer(c, inv.CustomerID); err != nil {
		return err
	}
	if html, err := wantsHTML(c); err != nil || html {
		return h.sendHTML(c, inv, err)
	}
	return c.JSON(inv)
}
