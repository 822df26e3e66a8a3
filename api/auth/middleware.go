// Package auth is the API's authentication and authorization: the Fiber
// middleware that turns a bearer API key into the request's Caller with
// package apikey, and the scope checks routes and handlers make with it.
//
// Its refusals are errors of the fault vocabulary (Unauthorized, Forbidden,
// NotFound), which the API's error handler answers like any other.
package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/fault"
)

// Caller is who made a request: the key it presented.
type Caller struct {
	ID         string // the key's UUID
	KeyID      string
	Scope      apikey.Scope
	CustomerID string // portal keys, and ingest keys bound to one customer
}

// MayIngestFor reports whether the caller may send usage events for
// customerID. Admin keys and ingest keys bound to no customer may send any
// customer's events; an ingest key bound to a customer only that
// customer's. Read and portal keys may send none (their scope keeps them
// off POST /v1/events anyway).
//
// Handlers that take events check every event with it, after the route's
// scope check, and refuse the ones it reports false for.
func (c Caller) MayIngestFor(customerID string) bool {
	switch c.Scope {
	case apikey.Admin:
		return true
	case apikey.Ingest:
		return c.CustomerID == "" || c.CustomerID == customerID
	}
	return false
}

type callerKey struct{}

// From returns the request's caller. ok is false on routes outside the
// authenticated /v1 group.
func From(c *fiber.Ctx) (Caller, bool) {
	caller, ok := c.Locals(callerKey{}).(Caller)
	return caller, ok
}

// Authenticate is middleware that requires "Authorization: Bearer <key>"
// and records the caller for From. Missing or unknown keys get 401.
func Authenticate(store *apikey.Store) fiber.Handler {
	return func(c *fiber.Ctx) error {
		scheme, key, _ := strings.Cut(strings.TrimSpace(c.Get(fiber.HeaderAuthorization)), " ")
		key = strings.TrimSpace(key)
		if !strings.EqualFold(scheme, "Bearer") || key == "" {
			return unauthorized(c, missingKey())
		}
		k, err := store.Authenticate(c.UserContext(), key)
		if errors.Is(err, fault.Unauthorized) {
			return unauthorized(c, err)
		}
		if err != nil {
			return err
		}
		c.Locals(callerKey{}, Caller{ID: k.ID, KeyID: k.KeyID, Scope: k.Scope, CustomerID: k.CustomerID})
		return c.Next()
	}
}

func missingKey() error {
	return fault.New(fault.Unauthorized, "missing API key: send Authorization: Bearer <key>")
}

// unauthorized answers err, a fault.Unauthorized, with the challenge a 401
// must carry (RFC 9110): the one thing here the error alone cannot say.
func unauthorized(c *fiber.Ctx, err error) error {
	c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="creditledger"`)
	return err
}

// Allow is route middleware that lets admin keys and keys of the given
// scopes through, and answers 403 to the rest. Read and Portal keys pass
// only on GET and HEAD, whatever the route says. Allow() with no scopes is
// admin only.
//
// It must run after Authenticate; without a caller it answers 401.
func Allow(scopes ...apikey.Scope) fiber.Handler {
	for _, s := range scopes {
		if !s.Valid() {
			panic(fmt.Sprintf("auth.Allow: unknown scope %q", s))
		}
	}
	scopes = slices.Clone(scopes)
	return func(c *fiber.Ctx) error {
		caller, ok := From(c)
		if !ok {
			return unauthorized(c, missingKey())
		}
		if Permits(caller.Scope, c.Method(), scopes) {
			return c.Next()
		}
		return fault.New(fault.Forbidden, "a %s key may not %s this resource", caller.Scope, c.Method())
	}
}

// Permits reports whether a key of scope may call a route that allows
// scopes with method.
func Permits(scope apikey.Scope, method string, allowed []apikey.Scope) bool {
	if scope == apikey.Admin {
		return true
	}
	if !slices.Contains(allowed, scope) {
		return false
	}
	if scope == apikey.Read || scope == apikey.Portal {
		return method == fiber.MethodGet || method == fiber.MethodHead
	}
	return true
}

// RequireCustomer is called by handlers of routes that allow Portal, with
// the customer that owns the requested resource. A portal token of another
// customer gets 404, as if the resource did not exist, so it cannot probe
// other customers' ids. Other scopes pass: the route's scope rules already
// admitted them.
func RequireCustomer(c *fiber.Ctx, customerID string) error {
	caller, ok := From(c)
	if !ok {
		return unauthorized(c, missingKey())
	}
	if caller.Scope == apikey.Portal && caller.CustomerID != customerID {
		// Answered as every 404 is, whatever this detail says.
		return fault.NotFoundf("a resource of customer %q, asked for by a portal key of another", customerID)
	}
	return nil
}
