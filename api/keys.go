package api

import (
	"errors"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/creditledger/creditledger/api/auth"
	"github.com/creditledger/creditledger/api/problem"
	"github.com/creditledger/creditledger/internal/text"
)

// Lifetimes in seconds, as expires_in_seconds counts them. Portal tokens
// live in browsers, so they expire by default.
const (
	defaultPortalLifetime = 3600
	maxPortalLifetime     = 30 * 24 * 3600
	maxKeyLifetime        = 10 * 365 * 24 * 3600
	maxNameLen            = 200
	maxCustomerIDLen      = 255
)

// keyJSON is an API key as the API shows it. Key, the plaintext, is set
// only in the response that created it.
type keyJSON struct {
	ID         string     `json:"id"`
	KeyID      string     `json:"key_id"`
	Scope      auth.Scope `json:"scope"`
	CustomerID *string    `json:"customer_id"`
	Name       *string    `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	Key        string     `json:"key,omitempty"`
}

func toKeyJSON(k auth.Key, plaintext string) keyJSON {
	return keyJSON{
		ID:         k.ID,
		KeyID:      k.KeyID,
		Scope:      k.Scope,
		CustomerID: nilIfEmpty(k.CustomerID),
		Name:       nilIfEmpty(k.Name),
		CreatedAt:  k.CreatedAt,
		ExpiresAt:  k.ExpiresAt,
		RevokedAt:  k.RevokedAt,
		Key:        plaintext,
	}
}

func nilIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// whoami tells a caller which key it is using.
func (s *server) whoami(c *fiber.Ctx) error {
	caller, _ := auth.From(c)
	return c.JSON(fiber.Map{
		"id":          caller.ID,
		"key_id":      caller.KeyID,
		"scope":       caller.Scope,
		"customer_id": nilIfEmpty(caller.CustomerID),
	})
}

type createKeyRequest struct {
	Scope            auth.Scope `json:"scope"`
	CustomerID       string     `json:"customer_id"`
	Name             string     `json:"name"`
	ExpiresInSeconds *int64     `json:"expires_in_seconds"`
}

func (s *server) createKey(c *fiber.Ctx) error {
	var req createKeyRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	var bad problem.Fields
	switch {
	case req.Scope == "":
		bad.Add("scope", "is required")
	case !req.Scope.Valid():
		bad.Add("scope", "must be one of admin, ingest, read, portal")
	case req.Scope == auth.Portal && req.CustomerID == "":
		bad.Add("customer_id", "is required for portal keys")
	case !req.Scope.MayHaveCustomer() && req.CustomerID != "":
		bad.Add("customer_id", "is allowed only for portal and ingest keys")
	}
	checkText(&bad, "customer_id", req.CustomerID, maxCustomerIDLen)
	checkText(&bad, "name", req.Name, maxNameLen)
	// A portal key is a portal token however it is minted: the same
	// lifetime rules and the same check that its customer exists.
	def, most := int64(0), int64(maxKeyLifetime)
	if req.Scope == auth.Portal {
		def, most = defaultPortalLifetime, maxPortalLifetime
	}
	ttl := lifetime(&bad, req.ExpiresInSeconds, def, most)
	if err := bad.Err(); err != nil {
		return err
	}
	// A key bound to a customer that does not exist would be a portal to
	// nothing, or an ingest key whose every event is refused.
	if req.CustomerID != "" && s.customerExists != nil {
		ok, err := s.customerExists(c.UserContext(), req.CustomerID)
		if err != nil {
			return err
		}
		if !ok {
			return problem.Invalid("customer_id", "no such customer")
		}
	}
	plaintext, k, err := s.keys.Create(c.UserContext(), req.Scope, req.CustomerID, req.Name, ttl)
	if err != nil {
		return createError(err)
	}
	s.log.Info("api key created", "key_id", k.KeyID, "scope", k.Scope, "by", callerKeyID(c), "request_id", RequestID(c))
	return c.Status(fiber.StatusCreated).JSON(toKeyJSON(k, plaintext))
}

// checkText adds field to bad unless s is text the database stores, within
// maxBytes: a NUL in a key's name would otherwise be a 500 from PostgreSQL.
func checkText(bad *problem.Fields, field, s string, maxBytes int) {
	var te *text.Error
	if errors.As(text.Check(field, s, maxBytes), &te) {
		bad.Add(field, te.Detail)
	}
}

// lifetime validates expires_in_seconds: absent means def seconds (0: never
// expires), present must be 1 to limit.
func lifetime(bad *problem.Fields, secs *int64, def, limit int64) time.Duration {
	n := def
	if secs != nil {
		n = *secs
		if n < 1 || n > limit {
			bad.Add("expires_in_seconds", "must be from 1 to "+strconv.FormatInt(limit, 10))
			return 0
		}
	}
	return time.Duration(n) * time.Second
}

// createError maps what Store.Create refuses (its own words, safe to show)
// to a validation problem; the handlers check first, so this is a backstop.
func createError(err error) error {
	if errors.Is(err, auth.ErrInvalid) {
		return problem.New(problem.Validation, err.Error())
	}
	return err
}

func (s *server) listKeys(c *fiber.Ctx) error {
	limit, cursor, err := PageQuery(c)
	if err != nil {
		return err
	}
	scope := auth.Scope(c.Query("scope"))
	if scope != "" && !scope.Valid() {
		return problem.Invalid("scope", "must be one of admin, ingest, read, portal")
	}
	keys, next, err := s.keys.List(c.UserContext(), auth.ListOptions{Limit: limit, Cursor: cursor, Scope: scope})
	if errors.Is(err, auth.ErrInvalid) {
		return problem.Invalid("cursor", "is not a cursor this list returned")
	}
	if err != nil {
		return err
	}
	out := make([]keyJSON, len(keys))
	for i, k := range keys {
		out[i] = toKeyJSON(k, "")
	}
	return c.JSON(NewPage(out, next))
}

func (s *server) revokeKey(c *fiber.Ctx) error {
	k, err := s.keys.Revoke(c.UserContext(), c.Params("id"))
	if errors.Is(err, auth.ErrNotFound) {
		return problem.New(problem.NotFound, "no such API key")
	}
	if err != nil {
		return err
	}
	s.log.Info("api key revoked", "key_id", k.KeyID, "by", callerKeyID(c), "request_id", RequestID(c))
	return c.JSON(toKeyJSON(k, ""))
}

type portalTokenRequest struct {
	Name             string `json:"name"`
	ExpiresInSeconds *int64 `json:"expires_in_seconds"`
}

// createPortalToken mints a portal key for one customer, e.g. for the app
// to hand to that customer's browser session. The customer's existence is
// not checked here: the customers table belongs to the wallet layer, which
// adds the check when it mounts its routes.
func (s *server) createPortalToken(c *fiber.Ctx) error {
	var req portalTokenRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	customer := c.Params("id")
	var bad problem.Fields
	checkText(&bad, "id", customer, maxCustomerIDLen)
	checkText(&bad, "name", req.Name, maxNameLen)
	ttl := lifetime(&bad, req.ExpiresInSeconds, defaultPortalLifetime, maxPortalLifetime)
	if err := bad.Err(); err != nil {
		return err
	}
	if s.customerExists != nil {
		ok, err := s.customerExists(c.UserContext(), customer)
		if err != nil {
			return err
		}
		if !ok {
			return problem.New(problem.NotFound, "no such customer")
		}
	}
	plaintext, k, err := s.keys.Create(c.UserContext(), auth.Portal, customer, req.Name, ttl)
	if err != nil {
		return createError(err)
	}
	return c.Status(fiber.StatusCreated).JSON(toKeyJSON(k, plaintext))
}

func callerKeyID(c *fiber.Ctx) string {
	caller, _ := auth.From(c)
	return caller.KeyID
}
