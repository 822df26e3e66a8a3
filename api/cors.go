package api

import (
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"
)

// CORS for LEDGER_CORS_ORIGINS: an app's own front end calls the API from
// a browser with a portal token (a bearer header, never a cookie, so no
// credentials mode). Portal tokens may only read, so GET and HEAD are all a
// preflight allows. A request from an origin not listed passes through
// untouched — no CORS header at all, so the browser refuses it — and a
// preflight from one meets the key check like any request without a key.
const (
	corsMethods = "GET,HEAD"
	corsHeaders = "Authorization,Accept,Content-Type,X-Request-Id"
	corsExpose  = "X-Request-Id,Retry-After"
	corsMaxAge  = 600 // seconds a browser may keep a preflight's answer
)

// corsHandler is the CORS middleware for origins ("*": any), or nil when
// there are none.
func corsHandler(origins []string) fiber.Handler {
	if len(origins) == 0 {
		return nil
	}
	anyOrigin := slices.Contains(origins, "*")
	lower := make([]string, len(origins))
	for i, o := range origins {
		lower[i] = strings.ToLower(strings.TrimSuffix(o, "/"))
	}
	allowOrigins := strings.Join(lower, ",")
	if anyOrigin {
		allowOrigins = "*"
	}
	return cors.New(cors.Config{
		// Not listed: as if there were no CORS at all.
		Next: func(c *fiber.Ctx) bool {
			o := strings.ToLower(c.Get(fiber.HeaderOrigin))
			return o == "" || !(anyOrigin || slices.Contains(lower, o))
		},
		AllowOrigins:  allowOrigins,
		AllowMethods:  corsMethods,
		AllowHeaders:  corsHeaders,
		ExposeHeaders: corsExpose,
		MaxAge:        corsMaxAge,
	})
}
