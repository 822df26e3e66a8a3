// Package secretbox encrypts small secrets for storage in the database:
// AES-256-GCM with a random nonce, bound to additional data (the id of the
// row that holds the secret, so a sealed value copied to another row does
// not open there), written in a self-describing text form,
//
//	enc:v1:<base64 of nonce | ciphertext | tag>
//
// so that a reader can tell a sealed value from a plaintext one written
// before encryption was turned on, and a later format can be told from
// this one.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the size of a key: AES-256.
const KeySize = 32

// Prefix starts every sealed value, of any version; prefixV1 starts the
// values this package writes.
const (
	Prefix   = "enc:"
	prefixV1 = Prefix + "v1:"
)

var (
	// ErrMalformed means a value has the sealed prefix but is not a value
	// this package can read: an unknown version, or not base64, or too
	// short.
	ErrMalformed = errors.New("secretbox: malformed sealed value")
	// ErrOpen means a well-formed value did not decrypt: it was sealed with
	// another key or for other additional data, or it was altered. GCM
	// cannot tell these apart.
	ErrOpen = errors.New("secretbox: cannot decrypt: another key, other additional data, or an altered value")
)

// Box seals and opens values with one key. It is safe for concurrent use.
type Box struct {
	aead cipher.AEAD
}

// New returns a Box for a KeySize-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secretbox: key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secretbox: %w", err)
	}
	// A fresh random 96-bit nonce per value, prepended to the ciphertext.
	// Random nonces are safe for far more values than a table of secrets
	// will ever hold (NIST's bound is 2^32 per key).
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("secretbox: %w", err)
	}
	return &Box{aead: aead}, nil
}

// ParseKey reads a key as it is written in configuration: 64 hexadecimal
// digits, or the base64 (standard or URL alphabet, padded or not) of 32
// bytes. Surrounding white space is ignored, since keys are often pasted
// from a file. The error never quotes the key.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 2*KeySize {
		if key, err := hex.DecodeString(s); err == nil {
			return key, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(s); err == nil {
			if len(key) != KeySize {
				return nil, fmt.Errorf("base64 of %d bytes, want %d random bytes (e.g. `openssl rand -base64 32`)", len(key), KeySize)
			}
			return key, nil
		}
	}
	return nil, fmt.Errorf("want %d random bytes as 64 hex digits or base64 (e.g. `openssl rand -hex 32`)", KeySize)
}

// IsSealed reports whether s is a sealed value (of any version) rather
// than a plaintext.
func IsSealed(s string) bool { return strings.HasPrefix(s, Prefix) }

// Seal encrypts plaintext bound to additional and returns the sealed text.
func (b *Box) Seal(plaintext, additional []byte) string {
	return prefixV1 + base64.StdEncoding.EncodeToString(b.aead.Seal(nil, nil, plaintext, additional))
}

// Open decrypts a value Seal returned, given the same additional data. It
// returns ErrMalformed for what is not such a value, ErrOpen for one that
// does not decrypt.
func (b *Box) Open(sealed string, additional []byte) ([]byte, error) {
	rest, ok := strings.CutPrefix(sealed, prefixV1)
	if !ok {
		if IsSealed(sealed) {
			return nil, fmt.Errorf("%w: unknown version", ErrMalformed)
		}
		return nil, fmt.Errorf("%w: no %s prefix", ErrMalformed, prefixV1)
	}
	raw, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64", ErrMalformed)
	}
	if len(raw) < b.aead.NonceSize()+b.aead.Overhead() {
		return nil, fmt.Errorf("%w: too short", ErrMalformed)
	}
	plain, err := b.aead.Open(nil, nil, raw, additional)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}
