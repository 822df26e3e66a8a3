package api

import (
	"bytes"
	"mime"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/creditledger/creditledger/api/problem"
)

// requireJSON refuses a request body sent as anything but application/json
// (415). A form or text/plain body is what a browser sends across origins
// without asking first, and a body read as JSON whatever its label can be
// read as something else by a proxy or firewall in front. A charset, if
// given, must be UTF-8: JSON is UTF-8. Requests without a body (close-cycle,
// voids, confirms) pass whatever their headers say.
func requireJSON(c *fiber.Ctx) error {
	if len(bytes.TrimSpace(c.Body())) == 0 || isJSON(c.Get(fiber.HeaderContentType)) {
		return c.Next()
	}
	return problem.New(problem.UnsupportedMediaType,
		"send the body as JSON with Content-Type: application/json (charset, if any, utf-8)")
}

// requireMedia is requireJSON for a route that also takes the media types
// in extra (POST /events: CloudEvents), exactly those, charset UTF-8 if any.
func requireMedia(extra []string) fiber.Handler {
	if len(extra) == 0 {
		return requireJSON
	}
	return func(c *fiber.Ctx) error {
		typ, params, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
		if cs, ok := params["charset"]; err == nil && slices.Contains(extra, typ) && (!ok || strings.EqualFold(cs, "utf-8")) {
			return c.Next()
		}
		return requireJSON(c)
	}
}

// isJSON reports whether a Content-Type header names application/json, in
// any case, with no charset or UTF-8.
func isJSON(header string) bool {
	typ, params, err := mime.ParseMediaType(header)
	if err != nil || typ != "application/json" {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8")
}
