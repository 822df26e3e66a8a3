package api

import (
	"encoding/json"

	"github.com/gofiber/fiber/v2"

	"github.com/creditledger/creditledger/api/problem"
)

// Idempotency headers. A client retrying a money-moving POST sends the same
// Idempotency-Key; the answer to a request the ledger had already applied
// carries Idempotent-Replayed: true.
const (
	HeaderIdempotencyKey      = "Idempotency-Key"
	HeaderIdempotentReplayed  = "Idempotent-Replayed"
	maxIdempotencyKeyLen      = 255
	idempotencyKeyNamespace   = "http:"
	idempotencyKeyFieldDetail = "must be 1 to 255 printable ASCII characters"
)

// idempotencyKey reads the Idempotency-Key header and returns the ledger
// key to use for it, or "" if the request has none (the service then makes
// a fresh key, so the request is applied once, as sent).
//
// The client's key is prefixed so that it can never equal a key the
// services make for themselves ("hold-expiry:<id>", generated keys): a
// client must not be able to replay, or block, an internal operation. The
// prefix is the same for every endpoint on purpose: the ledger fingerprints
// the operation's kind and target with its payload, so one key sent to two
// endpoints is a 409 idempotency_conflict rather than two silent writes.
func idempotencyKey(c *fiber.Ctx) (string, error) {
	k := c.Get(HeaderIdempotencyKey)
	if k == "" {
		return "", nil
	}
	if len(k) > maxIdempotencyKeyLen || !printableASCII(k) {
		return "", problem.Invalid(HeaderIdempotencyKey, idempotencyKeyFieldDetail)
	}
	return idempotencyKeyNamespace + k, nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// respond answers a money-moving request with the bytes the poster stored
// with the op: encoded once, never decoded and encoded again, and the same
// on a replay. A replayed rejection is a replay too: it gets the header and
// the same problem as the first time.
func respond(c *fiber.Ctx, status int, body json.RawMessage, replayed bool, err error) error {
	if replayed {
		c.Set(HeaderIdempotentReplayed, "true")
	}
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Status(status).Send(body)
}
