package api

import (
	"context"
	"encoding/json"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/creditledger/creditledger/api/auth"
	"github.com/creditledger/creditledger/api/problem"
	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/internal/cursor"
	"github.com/creditledger/creditledger/ledger"
	"github.com/creditledger/creditledger/wallet"
)

// WalletRoutes are the customer, wallet, grant, debit, hold and journal
// endpoints, for Config.Routes. Writes are admin only; reads are open to
// read keys and to the owning customer's portal tokens.
func WalletRoutes(svc *wallet.Service) []Route {
	h := &walletHandlers{svc: svc}
	return append([]Route{
		POST("/customers", h.createCustomer),
		GET("/customers", h.customers).Allow(apikey.Read),
		GET("/customers/:id", h.customer).Allow(apikey.Read, apikey.Portal),
		PATCH("/customers/:id", h.updateCustomer),
		GET("/customers/:id/wallets", h.customerWallets).Allow(apikey.Read, apikey.Portal),

		POST("/wallets", h.createWallet),
		GET("/wallets", h.wallets).Allow(apikey.Read),
		GET("/wallets/:id", h.wallet).Allow(apikey.Read, apikey.Portal),
		PATCH("/wallets/:id", h.updateWallet),
		GET("/wallets/:id/balance", h.balance).Allow(apikey.Read, apikey.Portal),
		GET("/wallets/:id/entries", h.entries).Allow(apikey.Read, apikey.Portal),

		POST("/wallets/:id/grants", h.addGrant),
		GET("/wallets/:id/grants", h.grants).Allow(apikey.Read, apikey.Portal),
		GET("/grants/:id", h.grant).Allow(apikey.Read, apikey.Portal),
		POST("/grants/:id/void", h.voidGrant),

		POST("/wallets/:id/debits", h.debit),

		POST("/wallets/:id/holds", h.placeHold),
		GET("/holds/:id", h.hold).Allow(apikey.Read, apikey.Portal),
		POST("/holds/:id/capture", h.captureHold),
		POST("/holds/:id/void", h.voidHold),
	}, append(h.topupRoutes(), h.assetRoutes()...)...)
}

type walletHandlers struct {
	svc *wallet.Service
}

// notFoundDetail is the one detail of every 404 here. A portal token asking
// for another customer's resource gets the same answer as for one that does
// not exist (auth.RequireCustomer says the same), so ids cannot be probed.
const notFoundDetail = "no such resource"

// Path ids. An id that is not a UUID names nothing: 404, as for an unknown
// UUID, rather than a 422 that would treat the URL as a form field.

func walletParam(c *fiber.Ctx) (wallet.WalletID, error) {
	id, err := wallet.ParseWalletID(c.Params("id"))
	if err != nil {
		return id, problem.New(problem.NotFound, notFoundDetail)
	}
	return id, nil
}

func grantParam(c *fiber.Ctx) (wallet.GrantID, error) {
	id, err := wallet.ParseGrantID(c.Params("id"))
	if err != nil {
		return id, problem.New(problem.NotFound, notFoundDetail)
	}
	return id, nil
}

func holdParam(c *fiber.Ctx) (wallet.HoldID, error) {
	id, err := wallet.ParseHoldID(c.Params("id"))
	if err != nil {
		return id, problem.New(problem.NotFound, notFoundDetail)
	}
	return id, nil
}

// ownWallet reads a wallet and lets the caller through only if a portal
// token belongs to the wallet's customer.
func (h *walletHandlers) ownWallet(c *fiber.Ctx, id wallet.WalletID) (wallet.Wallet, error) {
	w, err := h.svc.Wallet(c.UserContext(), id)
	if err != nil {
		return w, err
	}
	return w, auth.RequireCustomer(c, w.CustomerID)
}

// Customers.

type createCustomerRequest struct {
	ID       string          `json:"id"`
	Name     string          `json:"name"`
	Email    string          `json:"email"`
	Metadata json.RawMessage `json:"metadata"`
}

func (h *walletHandlers) createCustomer(c *fiber.Ctx) error {
	var req createCustomerRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	cus, err := h.svc.CreateCustomer(c.UserContext(), wallet.Customer{
		ID: req.ID, Name: req.Name, Email: req.Email, Metadata: req.Metadata,
	})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(cus)
}

func (h *walletHandlers) customer(c *fiber.Ctx) error {
	id := c.Params("id")
	if err := auth.RequireCustomer(c, id); err != nil {
		return err
	}
	cus, err := h.svc.Customer(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(cus)
}

func (h *walletHandlers) customerWallets(c *fiber.Ctx) error {
	id := c.Params("id")
	if err := auth.RequireCustomer(c, id); err != nil {
		return err
	}
	// An unknown customer is a 404, not an empty list: the client has the
	// id wrong.
	if _, err := h.svc.Customer(c.UserContext(), id); err != nil {
		return err
	}
	ws, err := h.svc.WalletsOf(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(NewPage(ws, ""))
}

// Wallets.

func (h *walletHandlers) createWallet(c *fiber.Ctx) error {
	var req wallet.NewWallet
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	w, err := h.svc.CreateWallet(c.UserContext(), req)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(w)
}

func (h *walletHandlers) wallet(c *fiber.Ctx) error {
	id, err := walletParam(c)
	if err != nil {
		return err
	}
	w, err := h.ownWallet(c, id)
	if err != nil {
		return err
	}
	return c.JSON(w)
}

// wallets lists a customer's wallets: GET /wallets?customer_id=.
func (h *walletHandlers) wallets(c *fiber.Ctx) error {
	id := c.Query("customer_id")
	if id == "" {
		return problem.Invalid("customer_id", "required: the customer whose wallets to list")
	}
	ws, err := h.svc.WalletsOf(c.UserContext(), id) // an unknown customer is a 404
	if err != nil {
		return err
	}
	return c.JSON(NewPage(ws, ""))
}

// updateWallet changes a wallet's settings through the poster, so it
// takes an Idempotency-Key like the money-moving POSTs.
func (h *walletHandlers) updateWallet(c *fiber.Ctx) error {
	return idempotent(c, fiber.StatusOK, wallet.ParseWalletID, h.svc.UpdateWallet)
}

func (h *walletHandlers) balance(c *fiber.Ctx) error {
	id, err := walletParam(c)
	if err != nil {
		return err
	}
	var at *time.Time
	if s := c.Query("at"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return problem.Invalid("at", "must be an RFC 3339 timestamp, e.g. 2025-01-31T23:59:59Z")
		}
		t = t.UTC()
		at = &t
	}
	if _, err := h.ownWallet(c, id); err != nil {
		return err
	}
	b, err := h.svc.Balance(c.UserContext(), id, at)
	if err != nil {
		return err
	}
	return c.JSON(b)
}

func (h *walletHandlers) entries(c *fiber.Ctx) error {
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
	es, next, err := h.svc.Entries(c.UserContext(), id, after, limit)
	if err != nil {
		return err
	}
	return c.JSON(NewPage(es, cursor.Next(next)))
}

// idempotent is every money-moving POST: the id in the path (one that
// cannot parse names nothing: 404), the Idempotency-Key, the body, the
// service call, and the answer, marked when it replays an earlier one.
func idempotent[ID, Req, Res any](c *fiber.Ctx, status int, parse func(string) (ID, error),
	call func(ctx context.Context, key string, id ID, req Req) (ledger.Result[Res], error)) error {
	id, err := parse(c.Params("id"))
	if err != nil {
		return problem.New(problem.NotFound, notFoundDetail)
	}
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	var req Req
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	res, err := call(c.UserContext(), key, id, req)
	return respond(c, status, res.JSON, res.Replayed, err)
}

// Grants.

func (h *walletHandlers) addGrant(c *fiber.Ctx) error {
	return idempotent(c, fiber.StatusCreated, wallet.ParseWalletID, h.svc.AddGrant)
}

func (h *walletHandlers) grants(c *fiber.Ctx) error {
	id, err := walletParam(c)
	if err != nil {
		return err
	}
	if _, err := h.ownWallet(c, id); err != nil {
		return err
	}
	gs, err := h.svc.Grants(c.UserContext(), id)
	if err != nil {
		return err
	}
	// The service returns all of a wallet's grants; they are few (one per
	// purchase or promotion), so the page is always the last one.
	return c.JSON(NewPage(gs, ""))
}

func (h *walletHandlers) grant(c *fiber.Ctx) error {
	id, err := grantParam(c)
	if err != nil {
		return err
	}
	g, err := h.svc.GrantByID(c.UserContext(), id)
	if err != nil {
		return err
	}
	if _, err := h.ownWallet(c, g.WalletID); err != nil {
		return err
	}
	return c.JSON(g)
}

// noBody is the body of POSTs that take none: an empty body or {} is fine,
// any field is a mistake worth saying so.
type noBody struct{}

func (h *walletHandlers) voidGrant(c *fiber.Ctx) error {
	return idempotent(c, fiber.StatusOK, wallet.ParseGrantID,
		func(ctx context.Context, key string, id wallet.GrantID, _ noBody) (ledger.Result[wallet.Grant], error) {
			return h.svc.VoidGrant(ctx, key, id)
		})
}

// Debits.

func (h *walletHandlers) debit(c *fiber.Ctx) error {
	return idempotent(c, fiber.StatusCreated, wallet.ParseWalletID, h.svc.Debit)
}

// Holds.

func (h *walletHandlers) placeHold(c *fiber.Ctx) error {
	return idempotent(c, fiber.StatusCreated, wallet.ParseWalletID, h.svc.PlaceHold)
}

func (h *walletHandlers) hold(c *fiber.Ctx) error {
	id, err := holdParam(c)
	if err != nil {
		return err
	}
	hold, err := h.svc.Hold(c.UserContext(), id)
	if err != nil {
		return err
	}
	if _, err := h.ownWallet(c, hold.WalletID); err != nil {
		return err
	}
	return c.JSON(hold)
}

type captureRequest struct {
	Amount *ledger.Amount `json:"amount"` // nil: the whole hold
}

func (h *walletHandlers) captureHold(c *fiber.Ctx) error {
	return idempotent(c, fiber.StatusOK, wallet.ParseHoldID,
		func(ctx context.Context, key string, id wallet.HoldID, req captureRequest) (ledger.Result[wallet.Hold], error) {
			return h.svc.CaptureHold(ctx, key, id, req.Amount)
		})
}

func (h *walletHandlers) voidHold(c *fiber.Ctx) error {
	return idempotent(c, fiber.StatusOK, wallet.ParseHoldID,
		func(ctx context.Context, key string, id wallet.HoldID, _ noBody) (ledger.Result[wallet.Hold], error) {
			return h.svc.VoidHold(ctx, key, id)
		})
}
