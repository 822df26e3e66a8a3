// Package portal is the customer portal: GET /portal?token=<portal token>,
// an HTML page for one customer — balances, grants, usage per day, the
// runway, the alerts fired and the invoices — served by ledgerd beside the
// API, with its styles and script embedded in the binary (no CDN, nothing
// fetched from the network).
//
// The token is exchanged for a session cookie (HttpOnly, SameSite=Strict,
// Secure over TLS) and the browser is sent back to /portal without it, so
// it leaves the address bar and the history. The cookie carries the token
// itself: every request authenticates it again through apikey, so an
// expired or revoked token ends the session at once, on any ledgerd
// process, with no session table to keep. A portal token only ever shows
// its own customer's data: every query below is by the token's customer.
package portal

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/creditledger/creditledger/api"
	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/billing"
	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/pg"
	"github.com/creditledger/creditledger/metering"
	"github.com/creditledger/creditledger/wallet"
)

// CookieName is the portal session's cookie.
const CookieName = "ledger_portal"

// Config is what the portal reads from.
type Config struct {
	Keys    *apikey.Store
	Wallets *wallet.Service
	Bills   *billing.Service
	Meters  *metering.Service
	DB      *pg.DB // the alerts, read from the outbox
	Log     *slog.Logger
	Now     func() time.Time // default time.Now; tests move it
}

// Portal serves the pages.
type Portal struct {
	cfg Config
}

// New returns the portal.
func New(cfg Config) *Portal {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Portal{cfg: cfg}
}

// Mount adds the portal's routes to r (api.Config.Pages).
func (p *Portal) Mount(r fiber.Router) {
	r.Get("/portal", api.Matched, p.page)
	r.Get("/portal/invoices/:id", api.Matched, p.invoice)
	r.Get("/portal/assets/:name", api.Matched, serveAsset)
}

// page exchanges a token for the session, or shows the session's customer.
func (p *Portal) page(c *fiber.Ctx) error {
	if token := c.Query("token"); token != "" {
		k, err := p.authenticate(c.UserContext(), token)
		if err != nil {
			return p.refuse(c, err)
		}
		ck := &fiber.Cookie{
			Name: CookieName, Value: token, Path: "/portal", HTTPOnly: true, SameSite: fiber.CookieSameSiteStrictMode,
			Secure: c.Protocol() == "https",
		}
		if k.ExpiresAt != nil {
			ck.Expires = *k.ExpiresAt
		}
		c.Cookie(ck)
		setHeaders(c) // no-store, and no Referer carrying the token anywhere
		return c.Redirect("/portal", fiber.StatusSeeOther)
	}
	k, err := p.session(c)
	if err != nil {
		return p.refuse(c, err)
	}
	v, err := p.load(c.UserContext(), k.CustomerID)
	if errors.Is(err, fault.NotFound) {
		return p.notFound(c) // the token's customer is gone
	}
	if err != nil {
		return p.fail(c, err)
	}
	return p.render(c, fiber.StatusOK, "page", v)
}

// invoice is one of the session's customer's invoices, as billing prints
// it. Another customer's invoice is not found, as an unknown id is.
func (p *Portal) invoice(c *fiber.Ctx) error {
	k, err := p.session(c)
	if err != nil {
		return p.refuse(c, err)
	}
	id, err := billing.ParseInvoiceID(c.Params("id"))
	if err != nil {
		return p.notFound(c)
	}
	inv, err := p.cfg.Bills.Invoice(c.UserContext(), id)
	if errors.Is(err, fault.NotFound) || (err == nil && inv.CustomerID != k.CustomerID) {
		return p.notFound(c)
	}
	if err != nil {
		return p.fail(c, err)
	}
	setHeaders(c)
	c.Type("html", "utf-8")
	return p.cfg.Bills.WriteHTML(c.UserContext(), c.Response().BodyWriter(), inv)
}

// session is the key the session cookie carries.
func (p *Portal) session(c *fiber.Ctx) (apikey.Key, error) {
	token := c.Cookies(CookieName)
	if token == "" {
		return apikey.Key{}, errNoSession
	}
	return p.authenticate(c.UserContext(), token)
}

var (
	errNoSession = errors.New("no session")
	errNotPortal = errors.New("not a portal token")
)

// authenticate accepts portal tokens only: an admin or read key in a
// browser's address bar would open every customer's data to whoever
// shares the link.
func (p *Portal) authenticate(ctx context.Context, token string) (apikey.Key, error) {
	k, err := p.cfg.Keys.Authenticate(ctx, token)
	if err != nil {
		return apikey.Key{}, err
	}
	if k.Scope != apikey.Portal || k.CustomerID == "" {
		return apikey.Key{}, errNotPortal
	}
	return k, nil
}
