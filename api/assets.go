package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/wallet"
)

// assetRoutes describe assets (part of WalletRoutes): what credits are
// worth in money, and a currency's minor units. Describing is admin only;
// reads are open to read keys (an asset is not any customer's).
func (h *walletHandlers) assetRoutes() []Route {
	return []Route{
		PUT("/assets/:code", h.putAsset),
		GET("/assets", h.assets).Allow(apikey.Read),
		GET("/assets/:code", h.asset).Allow(apikey.Read),
	}
}

func (h *walletHandlers) putAsset(c *fiber.Ctx) error {
	var req wallet.NewAsset
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	a, err := h.svc.PutAsset(c.UserContext(), c.Params("code"), req)
	if err != nil {
		return err
	}
	return c.JSON(a)
}

// assets answers every described asset in one page: there are few.
func (h *walletHandlers) assets(c *fiber.Ctx) error {
	as, err := h.svc.Assets(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(NewPage(as, ""))
}

func (h *walletHandlers) asset(c *fiber.Ctx) error {
	a, err := h.svc.Asset(c.UserContext(), c.Params("code"))
	if err != nil {
		return err
	}
	return c.JSON(a)
}
