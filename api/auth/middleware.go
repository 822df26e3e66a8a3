package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/creditledger/creditledger/api/problem"
)

// Caller is who made a request: the key it presented.
type Caller struct {
	ID         string // the key's UUID
	KeyID      string
	Scope      Scope
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
	case Admin:
		return true
	case Ingest:
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
func Authenticate(store *Store) fiber.Handler {
	return func(c *fiber.Ctx) error {
		scheme, key, _ := strings.Cut(strings.TrimSpace(c.Get(fiber.HeaderAuthorization)), " ")
		key = strings.TrimSpace(key)
		if !strings.EqualFold(scheme, "Bearer") || key == "" {
			return unauthorized(c, "missing API key: send Authorization: Bearer <key>")
		}
		k, err := store.Authenticate(c.UserContext(), key)
		if errors.Is(err, ErrUnknownKey) {
			return unauthorized(c, "unknown, revoked or expired API key")
		}
		if err != nil {
			return err
		}
		c.Locals(callerKey{}, Caller{ID: k.ID, KeyID: k.KeyID, Scope: k.Scope, CustomerID: k.CustomerID})
		return c.Next()
	}
}

func unauthorized(c *fiber.Ctx, detail string) error {
	c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="creditledger"`)
	return problem.New(problem.Unauthorized, detail)
}

// Allow is route middleware that lets admin keys and keys of the given
// scopes through, and answers 403 to the rest. Read and Portal keys pass
// only on GET and HEAD, whatever the route says. Allow() with no scopes is
// admin only.
//
// It must run after Authenticate; without a caller it answers 401.
func Allow(scopes ...Scope) fiber.Handler {
	for _, s := range scopes {
		if !s.Valid() {
			panic(fmt.Sprintf("auth.Allow: unknown scope %q", s))
		}
	}
	scopes = slices.Clone(scopes)
	return func(c *fiber.Ctx) error {
		caller, ok := From(c)
		if !ok {
			return unauthorized(c, "missing API key: send Authorization: Bearer <key>")
		}
		if Permits(caller.Scope, c.Method(), scopes) {
			return c.Next()
		}
		return problem.Newf(problem.Forbidden, "a %s key may not %s this resource", caller.Scope, c.Method())
	}
}

// Permits reports whether a key of scope may call a route that allows
// scopes with method.
func Permits(scope Scope, method string, allowed []Scope) bool {
	if scope == Admin {
		return true
	}
	if !slices.Contains(allowed, scope) {
		return false
	}
	if scope == Read || scope == Portal {
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
		return unauthorized(c, "missing API key: send Authorization: Bearer <key>")
	}
	if caller.Scope == Portal && caller.CustomerID != customerID {
		return problem.New(problem.NotFound, "no such resource")
	}
	return nil
}
