package portal

import (
	"errors"

	"github.com/gofiber/fiber/v2"

	"github.com/creditledger/creditledger/fault"
)

// errorPage is what the error template shows: a status, a title and what
// to do, never a cause (which goes to the log).
type errorPage struct {
	Status       int
	Title, Hint  string
	ClearSession bool
}

// refuse answers a token or session that does not open the portal: 401
// when there is none, or it is unknown, expired or revoked; 403 when it is
// a key of another kind. The stale cookie is cleared.
func (p *Portal) refuse(c *fiber.Ctx, err error) error {
	e := errorPage{Status: fiber.StatusUnauthorized, Title: "This link has expired",
		Hint: "Portal links are valid for a limited time, and can be revoked. Ask for a new link to your account page.", ClearSession: true}
	switch {
	case errors.Is(err, errNoSession):
		e.Title = "Sign-in required"
		e.Hint = "Open the portal with the link you were given: it signs you in for this browser."
		e.ClearSession = false
	case errors.Is(err, errNotPortal):
		e.Status = fiber.StatusForbidden
		e.Title = "This key cannot open the portal"
		e.Hint = "The customer portal opens with a portal token, made for one customer (POST /v1/customers/{id}/portal-tokens)."
	case errors.Is(err, fault.Unauthorized):
	default:
		return p.fail(c, err)
	}
	if e.ClearSession {
		c.Cookie(&fiber.Cookie{Name: CookieName, Value: "", Path: "/portal", MaxAge: -1, HTTPOnly: true, SameSite: fiber.CookieSameSiteStrictMode})
	}
	return p.render(c, e.Status, "error", e)
}

func (p *Portal) notFound(c *fiber.Ctx) error {
	return p.render(c, fiber.StatusNotFound, "error", errorPage{Status: fiber.StatusNotFound, Title: "Not found",
		Hint: "There is no such page for your account."})
}

// fail logs err and answers a page that says the service could not
// answer: 503 when the database is away, 500 otherwise; never the cause.
func (p *Portal) fail(c *fiber.Ctx, err error) error {
	status := fiber.StatusInternalServerError
	hint := "Something went wrong on our side. It has been logged; please try again later."
	if errors.Is(err, fault.Unavailable) || errors.Is(err, fault.Retry) {
		status = fiber.StatusServiceUnavailable
		hint = "The service is briefly unavailable. Please try again in a minute."
		c.Set(fiber.HeaderRetryAfter, "5")
	}
	p.cfg.Log.Error("portal", "err", err, "path", c.Path())
	return p.render(c, status, "error", errorPage{Status: status, Title: "We could not load your account", Hint: hint})
}
