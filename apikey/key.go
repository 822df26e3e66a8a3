package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Scope is what a key may do.
type Scope string

const (
	// Admin may do everything.
	Admin Scope = "admin"
	// Ingest may only send usage events (POST /v1/events). An ingest key
	// bound to a customer may send only that customer's events: the events
	// handler checks each one with Caller.MayIngestFor.
	Ingest Scope = "ingest"
	// Read may only read (GET), across all customers.
	Read Scope = "read"
	// Portal may only read (GET), and only its own customer's resources: a
	// route that allows Portal promises that its handler calls
	// RequireCustomer. Portal tokens are what a customer-facing dashboard
	// holds.
	Portal Scope = "portal"
)

// Valid reports whether s is one of the four scopes.
func (s Scope) Valid() bool {
	switch s {
	case Admin, Ingest, Read, Portal:
		return true
	}
	return false
}

// scopeChoices is what a refused scope is told.
const scopeChoices = "must be one of admin, ingest, read, portal"

// MayHaveCustomer reports whether a key of scope may be bound to a
// customer: a portal key must be, an ingest key may be, others may not.
func (s Scope) MayHaveCustomer() bool { return s == Portal || s == Ingest }

// Key is a stored API key. Its secret is never kept, only a hash.
type Key struct {
	ID         string // UUID, the key's resource id in the API
	KeyID      string // the non-secret part of the key string, shown in logs and lists
	Scope      Scope
	CustomerID string // always set for portal keys, optionally for ingest keys, never for others
	Name       string
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	RevokedAt  *time.Time
}

// Key strings look like
//
//	lk_<scope>_<key id>_<secret>
//	lk_read_mfrggzdfmztwq2lk_<52 base32 characters>
//
// The key id (80 random bits) finds the row; the secret (256 random bits) is
// checked against its SHA-256. A plain hash without salt or stretching is
// enough because the secret is random and long: there is nothing to guess.
// The scope in the string is only for humans and secret scanners; the stored
// scope is what counts.
//
// Keys given from outside (LEDGER_ADMIN_KEY) may have any format. A string
// that is not of the form above is looked up under a key id derived from
// its own hash, "env_" + 16 hex digits of SHA-256(string), and the whole
// string is the secret. BootstrapAdmin stores such keys the same way, so
// Authenticate needs no second code path.
const (
	keyPrefix     = "lk"
	keyIDBytes    = 10 // 16 base32 characters
	secretBytes   = 32 // 52 base32 characters
	maxPresented  = 512
	derivedPrefix = "env_"
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// newKey makes a key string for scope and returns it with its key id and the
// hash of its secret.
func newKey(scope Scope) (plaintext, keyID string, hash []byte, err error) {
	buf := make([]byte, keyIDBytes+secretBytes)
	if _, err := rand.Read(buf); err != nil {
		return "", "", nil, fmt.Errorf("random key: %w", err)
	}
	keyID = strings.ToLower(b32.EncodeToString(buf[:keyIDBytes]))
	secret := strings.ToLower(b32.EncodeToString(buf[keyIDBytes:]))
	sum := sha256.Sum256([]byte(secret))
	return keyPrefix + "_" + string(scope) + "_" + keyID + "_" + secret, keyID, sum[:], nil
}

// split returns the key id to look a presented key up by and the secret to
// check. Every string has an answer; one that names no stored key simply
// finds no row.
func split(presented string) (keyID, secret string) {
	parts := strings.Split(presented, "_")
	if len(parts) == 4 && parts[0] == keyPrefix && Scope(parts[1]).Valid() &&
		len(parts[2]) == b32.EncodedLen(keyIDBytes) && isBase32(parts[2]) &&
		len(parts[3]) == b32.EncodedLen(secretBytes) && isBase32(parts[3]) {
		return parts[2], parts[3]
	}
	sum := sha256.Sum256([]byte(presented))
	return derivedPrefix + hex.EncodeToString(sum[:8]), presented
}

func isBase32(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

func hashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}
