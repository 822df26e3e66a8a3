package secretbox

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func box(t *testing.T, k []byte) *Box {
	t.Helper()
	b, err := New(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	b := box(t, key(1))
	for _, plain := range []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "", strings.Repeat("x", 4096)} {
		sealed := b.Seal([]byte(plain), []byte("endpoint-1"))
		if !strings.HasPrefix(sealed, "enc:v1:") || !IsSealed(sealed) {
			t.Fatalf("sealed %q lacks its prefix", sealed)
		}
		if plain != "" && strings.Contains(sealed, plain) {
			t.Fatalf("sealed %q shows the plaintext", sealed)
		}
		got, err := b.Open(sealed, []byte("endpoint-1"))
		if err != nil || string(got) != plain {
			t.Fatalf("Open = %q, %v; want %q", got, err, plain)
		}
		// Another Box with the same key opens it: nothing but the key is state.
		if got, err := box(t, key(1)).Open(sealed, []byte("endpoint-1")); err != nil || string(got) != plain {
			t.Fatalf("Open with a second Box = %q, %v", got, err)
		}
	}
	// A random nonce each time: the same plaintext never seals the same.
	a, c := b.Seal([]byte("same"), nil), b.Seal([]byte("same"), nil)
	if a == c {
		t.Fatalf("two seals of one plaintext are equal: %q", a)
	}
}

func TestOpenRefuses(t *testing.T) {
	b := box(t, key(1))
	sealed := b.Seal([]byte("whsec_secret"), []byte("endpoint-1"))
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sealed, "enc:v1:"))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) string {
		t := bytes.Clone(raw)
		t[i] ^= 1
		return "enc:v1:" + base64.StdEncoding.EncodeToString(t)
	}
	for _, tc := range []struct {
		name       string
		box        *Box
		sealed     string
		additional string
		want       error
	}{
		{"wrong key", box(t, key(2)), sealed, "endpoint-1", ErrOpen},
		{"wrong additional data", b, sealed, "endpoint-2", ErrOpen},
		{"no additional data", b, sealed, "", ErrOpen},
		{"tampered nonce", b, flip(0), "endpoint-1", ErrOpen},
		{"tampered ciphertext", b, flip(14), "endpoint-1", ErrOpen},
		{"tampered tag", b, flip(len(raw) - 1), "endpoint-1", ErrOpen},
		{"truncated", b, "enc:v1:" + base64.StdEncoding.EncodeToString(raw[:len(raw)-1]), "endpoint-1", ErrOpen},
		{"too short", b, "enc:v1:" + base64.StdEncoding.EncodeToString(raw[:27]), "endpoint-1", ErrMalformed},
		{"not base64", b, "enc:v1:***", "endpoint-1", ErrMalformed},
		{"unknown version", b, "enc:v2:" + strings.TrimPrefix(sealed, "enc:v1:"), "endpoint-1", ErrMalformed},
		{"plaintext", b, "whsec_secret", "endpoint-1", ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.box.Open(tc.sealed, []byte(tc.additional))
			if !errors.Is(err, tc.want) || got != nil {
				t.Fatalf("Open = %q, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestIsSealed(t *testing.T) {
	for s, want := range map[string]bool{
		"enc:v1:abc":   true,
		"enc:v9:abc":   true, // a later version is still not a plaintext
		"whsec_abc":    false,
		"":             false,
		"ENC:v1:abc":   false,
		" enc:v1:abc ": false,
	} {
		if got := IsSealed(s); got != want {
			t.Errorf("IsSealed(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestNewRefusesOtherSizes(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := New(make([]byte, n)); err == nil {
			t.Errorf("New accepted a %d-byte key", n)
		}
	}
}

func TestParseKey(t *testing.T) {
	k := []byte("0123456789abcdefghijklmnopqrstuv") // 32 bytes
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"hex", hex.EncodeToString(k), true},
		{"upper-case hex", strings.ToUpper(hex.EncodeToString(k)), true},
		{"base64", base64.StdEncoding.EncodeToString(k), true},
		{"base64 without padding", base64.RawStdEncoding.EncodeToString(k), true},
		{"base64 URL alphabet", base64.URLEncoding.EncodeToString(k), true},
		{"with a trailing newline", hex.EncodeToString(k) + "\n", true},
		{"empty", "", false},
		{"63 hex digits", hex.EncodeToString(k)[:63], false},
		{"66 hex digits", hex.EncodeToString(append(k, 0)), false},
		{"base64 of 31 bytes", base64.StdEncoding.EncodeToString(k[:31]), false},
		{"base64 of 33 bytes", base64.StdEncoding.EncodeToString(append(k, 0)), false},
		{"a passphrase", "correct horse battery staple and more words", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKey(tc.in)
			switch {
			case tc.ok && (err != nil || !bytes.Equal(got, k)):
				t.Fatalf("ParseKey = %x, %v; want %x", got, err, k)
			case !tc.ok && err == nil:
				t.Fatalf("ParseKey accepted it: %x", got)
			case !tc.ok && tc.in != "" && strings.Contains(err.Error(), strings.TrimSpace(tc.in)):
				t.Fatalf("error %q quotes the key", err)
			}
		})
	}
}
