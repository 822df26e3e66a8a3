package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every endpoint secret, as Standard Webhooks has it.
const SecretPrefix = "whsec_"

// secretBytes is the size of a secret's key; Standard Webhooks asks for 24
// to 64 bytes.
const secretBytes = 32

// NewSecret makes an endpoint secret: "whsec_" and the base64 of 32 random
// bytes.
func NewSecret() string {
	key := make([]byte, secretBytes)
	rand.Read(key) // never fails: crypto/rand aborts the program if it cannot read
	return SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// SecretKey is the HMAC key of a secret: the bytes its base64 encodes.
func SecretKey(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, errors.New("webhook secret: no " + SecretPrefix + " prefix")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, errors.New("webhook secret: not base64")
	}
	return key, nil
}

// Sign is the webhook-signature header of one attempt: "v1," and the
// base64 HMAC-SHA256, keyed with key, of "<id>.<timestamp>.<body>".
func Sign(key []byte, id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// signer signs the attempts of one endpoint: with its current secret and,
// while the secret a rotation replaced is still valid, with that one too,
// the two signatures space-separated as Standard Webhooks allows
// ("v1,<new> v1,<old>"). Receivers accept a request if any signature
// matches a secret they hold.
type signer struct {
	current       []byte
	previous      []byte // nil: none
	previousUntil time.Time
}

// header is the webhook-signature header of an attempt at ts.
func (g signer) header(id string, ts time.Time, body []byte) string {
	h := Sign(g.current, id, ts.Unix(), body)
	if g.previous != nil && ts.Before(g.previousUntil) {
		h += " " + Sign(g.previous, id, ts.Unix(), body)
	}
	return h
}
