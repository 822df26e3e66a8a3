package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/creditledger/creditledger/wallet"
)

// customers lists customers newest first: GET /customers?q=&limit=&cursor=,
// q a case-insensitive prefix of the id, name or email.
func (h *walletHandlers) customers(c *fiber.Ctx) error {
	limit, after, err := PageQuery(c)
	if err != nil {
		return err
	}
	cs, next, err := h.svc.Customers(c.UserContext(), c.Query("q"), after, limit)
	if err != nil {
		return err
	}
	return c.JSON(NewPage(cs, next))
}

// updateCustomer changes a customer's name, email or metadata: PATCH
// /customers/{id}; fields left out stay as they are.
func (h *walletHandlers) updateCustomer(c *fiber.Ctx) error {
	var req wallet.CustomerPatch
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	cus, err := h.svc.UpdateCustomer(c.UserContext(), c.Params("id"), req)
	if err != nil {
		return err
	}
	return c.JSON(cus)
}
