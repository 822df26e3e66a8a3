package api

import (
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/creditledger/creditledger/api/auth"
	"github.com/creditledger/creditledger/api/problem"
	"github.com/creditledger/creditledger/apikey"
	"github.com/creditledger/creditledger/fault"
	"github.com/creditledger/creditledger/internal/text"
)

// Lifetimes in seconds, as expires_in_seconds counts them, of keys made
// through the API. Portal tokens live in browsers, so they expire by
// default.
const (
	defaultPortalLifetime = 3600
	maxPortalLifetime     = 30 * 24 * 3600
	maxKeyLifetime        = 10 * 365 * 24 * 3600
)

// keyJSON is an API key as the API shows it. Key, the plaintext, is set
// only in the response that created it.
type keyJSON struct {
	ID         string       `json:"id"`
	KeyID      string       `json:"key_id"`
	Scope      apikey.Scope `json:"scope"`
	CustomerID *string      `json:"customer_id"`
	Name       *string      `json:"name"`
	CreatedAt  time.Time    `json:"created_at"`
	ExpiresAt  *time.Time   `json:"expires_at"`
	RevokedAt  *time.Time   `json:"revoked_at"`
	Key        string       `json:"key,omitempty"`
}

func toKeyJSON(k apikey.Key, plaintext string) keyJSON {
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
	Scope            apikey.Scope `json:"scope"`
	CustomerID       string       `json:"customer_id"`
	Name             string       `json:"name"`
	ExpiresInSeconds *int64       `json:"expires_in_seconds"`
}

func (s *server) createKey(c *fiber.Ctx) error {
	var req createKeyRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	ttl, badTTL := keyLifetime(req.Scope, req.ExpiresInSeconds)
	nk := apikey.NewKey{Scope: req.Scope, CustomerID: req.CustomerID, Name: req.Name, TTL: ttl}
	// Every wrong field at once, and before the customer is looked up: a
	// customer id that is not text must not reach the database.
	if err := errors.Join(nk.Check(), badTTL); err != nil {
		return err
	}
	// A key bound to a customer that does not exist would be a portal to
	// nothing, or an ingest key whose every event is refused.
	if nk.CustomerID != "" && s.customerExists != nil {
		ok, err := s.customerExists(c.UserContext(), nk.CustomerID)
		if err != nil {
			return err
		}
		if !ok {
			return fault.Invalidf("customer_id", "no such customer")
		}
	}
	plaintext, k, err := s.keys.Create(c.UserContext(), nk)
	if err != nil {
		return err
	}
	s.log.Info("api key created", "key_id", k.KeyID, "scope", k.Scope, "by", callerKeyID(c), "request_id", RequestID(c))
	return c.Status(fiber.StatusCreated).JSON(toKeyJSON(k, plaintext))
}

// keyLifetime reads expires_in_seconds of a key made through the API: a
// portal key is a portal token however it is minted, so both routes apply
// the same rule. Absent, it is an hour for a portal key and no expiry for
// others; present, 1 to 30 days' seconds for a portal key, to ten years'
// for others. ledgerctl, for operators, sets any lifetime it is given.
func keyLifetime(scope apikey.Scope, secs *int64) (time.Duration, error) {
	def, most := int64(0), int64(maxKeyLifetime)
	if scope == apikey.Portal {
		def, most = defaultPortalLifetime, maxPortalLifetime
	}
	if secs == nil {
		return seconds(def), nil
	}
	if *secs < 1 || *secs > most {
		return 0, fault.Invalidf("expires_in_seconds", "must be from 1 to %d", most)
	}
	return seconds(*secs), nil
}

func (s *server) listKeys(c *fiber.Ctx) error {
	limit, cursor, err := PageQuery(c)
	if err != nil {
		return err
	}
	opts := apikey.ListOptions{Limit: limit, Cursor: cursor, Scope: apikey.Scope(c.Query("scope"))}
	keys, next, err := s.keys.List(c.UserContext(), opts)
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
// to hand to that customer's browser session.
func (s *server) createPortalToken(c *fiber.Ctx) error {
	var req portalTokenRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	customer := c.Params("id")
	ttl, badTTL := keyLifetime(apikey.Portal, req.ExpiresInSeconds)
	// The customer here is the path's id, not a customer_id field, so it is
	// refused under that name, with the name and lifetime; and before it is
	// looked up, so that a NUL never reaches the database. Create checks
	// the same again.
	if err := errors.Join(textField("id", customer, apikey.MaxCustomerIDLen),
		textField("name", req.Name, apikey.MaxNameLen), badTTL); err != nil {
		return err
	}
	// The customer is the resource the path names: one that does not exist
	// is a 404, not a field of the request that is wrong.
	if s.customerExists != nil {
		ok, err := s.customerExists(c.UserContext(), customer)
		if err != nil {
			return err
		}
		if !ok {
			return problem.New(problem.NotFound, "no such customer")
		}
	}
	plaintext, k, err := s.keys.Create(c.UserContext(),
		apikey.NewKey{Scope: apikey.Portal, CustomerID: customer, Name: req.Name, TTL: ttl})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(toKeyJSON(k, plaintext))
}

// textField refuses s, field of the request, unless it is text the
// database stores within maxBytes.
func textField(field, s string, maxBytes int) error {
	var te *text.Error
	if errors.As(text.Check(field, s, maxBytes), &te) {
		return fault.Invalidf(te.Field, "%s", te.Detail)
	}
	return nil
}

func callerKeyID(c *fiber.Ctx) string {
	caller, _ := auth.From(c)
	return caller.KeyID
}
