package api

import (
	_ "embed"

	"github.com/gofiber/fiber/v2"
)

// openAPI is the API's OpenAPI 3.1 document, the contract clients build
// against. It is kept by hand next to the code it describes, and
// TestOpenAPIRoutes fails when the two disagree on a route or its scopes,
// so a route cannot be added without documenting it.
//
//go:embed openapi.json
var openAPI []byte

// serveOpenAPI answers GET /openapi.json. It needs no key: the document says
// what the API is, not what is in it, and clients and tools fetch it before
// they have a key.
func serveOpenAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(openAPI)
}
