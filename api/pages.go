package api

import "github.com/gofiber/fiber/v2"

// Matched is the first handler of a page's route (HTMLPages): it records
// the route's pattern, so its requests are counted and logged under it
// ("/portal/invoices/:id") rather than as unrouted.
func Matched(c *fiber.Ctx) error { return matched(c) }
