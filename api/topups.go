package api

import (
	"context"

	"github.com/gofiber/fiber/v2"

	"github.com/creditledger/creditledger/api/auth"
	"github.com/creditledger/creditledger/api/problem"
	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/internal/cursor"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

// topupRoutes are the auto top-up and top-up endpoints (part of
// WalletRoutes). Configuring and settling are admin only; reads are open to
// read keys and to the customer's portal tokens.
func (h *walletHandlers) topupRoutes() []Route {
	return []Route{
		PUT("/wallets/:id/auto-topup", h.setAutoTopup),
		GET("/wallets/:id/auto-topup", h.autoTopup).Allow(apikey.Read, apikey.Portal),
		GET("/wallets/:id/topups", h.topups).Allow(apikey.Read, apikey.Portal),
		GET("/topups/:id", h.topup).Allow(apikey.Read, apikey.Portal),
		POST("/topups/:id/confirm", h.confirmTopup),
		POST("/topups/:id/fail", h.failTopup),
	}
}

func (h *walletHandlers) setAutoTopup(c *fiber.Ctx) error {
	id, err := walletParam(c)
	if err != nil {
		return err
	}
	var req wallet.NewAutoTopup
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	r, err := h.svc.SetAutoTopup(c.UserContext(), id, req)
	if err != nil {
		return err
	}
	return c.JSON(r)
}

func (h *walletHandlers) autoTopup(c *fiber.Ctx) error {
	id, err := walletParam(c)
	if err != nil {
		return err
	}
	if _, err := h.ownWallet(c, id); err != nil {
		return err
	}
	r, err := h.svc.AutoTopup(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(r)
}

func (h *walletHandlers) topups(c *fiber.Ctx) error {
	id, err := walletParam(c)
	if err != nil {
		return err
	}
	limit, after, err := pageAfter(c)
	if err != nil {
		return err
	}
	if _, err := h.ownWallet(c, id); err != nil {
		return err
	}
	ts, next, err := h.svc.Topups(c.UserContext(), id, after, limit)
	if err != nil {
		return err
	}
	return c.JSON(NewPage(ts, cursor.Next(next)))
}

func (h *walletHandlers) topup(c *fiber.Ctx) error {
	id, err := wallet.ParseTopupID(c.Params("id"))
	if err != nil {
		return problem.New(problem.NotFound, notFoundDetail)
	}
	t, err := h.svc.Topup(c.UserContext(), id)
	if err != nil {
		return err
	}
	if err := auth.RequireCustomer(c, t.CustomerID); err != nil {
		return err
	}
	return c.JSON(t)
}

// Confirming, failing and closing a cycle are idempotent by what they name
// (the top-up, the cycle): an Idempotency-Key adds nothing and is ignored.

func (h *walletHandlers) confirmTopup(c *fiber.Ctx) error {
	return idempotent(c, fiber.StatusOK, wallet.ParseTopupID,
		func(ctx context.Context, _ string, id wallet.TopupID, _ noBody) (ledger.Result[wallet.Topup], error) {
			return h.svc.ConfirmTopup(ctx, id)
		})
}

type failTopupRequest struct {
	Reason string `json:"reason"`
}

func (h *walletHandlers) failTopup(c *fiber.Ctx) error {
	return idempotent(c, fiber.StatusOK, wallet.ParseTopupID,
		func(ctx context.Context, _ string, id wallet.TopupID, req failTopupRequest) (ledger.Result[wallet.Topup], error) {
			return h.svc.FailTopup(ctx, id, req.Reason)
		})
}
