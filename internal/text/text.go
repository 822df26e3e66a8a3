// Package text checks user text before it is stored. PostgreSQL refuses a
// NUL in TEXT, invalid UTF-8 anywhere (SQLSTATE 22021), and a \u0000
// escape or a lone UTF-16 surrogate in JSONB (22P05, 22P02). Refused in a
// batch, such text fails every operation committed with it, so it is
// refused at the edge instead, as a validation error naming the field.
package text

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Error is a refused field. Detail is written for the client that sent it.
type Error struct {
	Field  string
	Detail string
}

func (e *Error) Error() string { return e.Field + ": " + e.Detail }

func refuse(field, format string, args ...any) *Error {
	return &Error{Field: field, Detail: fmt.Sprintf(format, args...)}
}

// Check refuses s unless it is valid UTF-8 of at most maxBytes bytes with
// no control character but tab, line feed and carriage return, which a
// description may sensibly hold. Every other C0 control (NUL among them)
// is refused: none is text anyone means to store, and NUL cannot be.
func Check(field, s string, maxBytes int) error {
	if len(s) > maxBytes {
		return refuse(field, "at most %d bytes", maxBytes)
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == 0:
				return refuse(field, `must not contain NUL (\u0000)`)
			case c < 0x20 && c != '\t' && c != '\n' && c != '\r':
				return refuse(field, `must not contain control characters (\u%04x at byte %d)`, c, i)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			return refuse(field, "must be valid UTF-8 (byte %d is not)", i)
		}
		i += n
	}
	return nil
}

// Limits on a JSON number, well inside what PostgreSQL's NUMERIC (and so
// JSONB) can hold: 1e131072 overflows it, and so does 0e-20000.
const (
	maxNumberLen      = 1000
	maxNumberExponent = 1000
)

// CheckJSON refuses the JSON text raw (metadata, event properties) unless
// it is valid UTF-8 of at most maxBytes bytes that JSONB can store: no
// string, key or value, holds a \u0000 escape or a UTF-16 surrogate
// escape that is not part of a pair, and no number is longer than 1,000
// characters or has an exponent beyond ±1,000. raw is taken to be
// well-formed JSON; whether it is, and has the shape wanted, is for the
// caller's decoder to say.
func CheckJSON(field string, raw []byte, maxBytes int) error {
	if len(raw) > maxBytes {
		return refuse(field, "at most %d bytes", maxBytes)
	}
	if !utf8.Valid(raw) {
		return refuse(field, "must be valid UTF-8")
	}
	for i := 0; i < len(raw); {
		switch c := raw[i]; {
		case c == 0:
			return refuse(field, `must not contain NUL (\u0000)`)
		case c == '"':
			end, err := jsonString(field, raw, i+1)
			if err != nil {
				return err
			}
			i = end
		case c == '-' || '0' <= c && c <= '9':
			end := i
			for end < len(raw) && strings.IndexByte("+-.0123456789eE", raw[end]) >= 0 {
				end++
			}
			if !storableNumber(raw[i:end]) {
				return refuse(field, "must not contain a number longer than %d characters or with an exponent beyond ±%d (%.20s…)",
					maxNumberLen, maxNumberExponent, raw[i:end])
			}
			i = end
		default:
			i++
		}
	}
	return nil
}

// jsonString checks the string whose contents start at raw[i] and returns
// the index after its closing quote.
func jsonString(field string, raw []byte, i int) (int, error) {
	for i < len(raw) {
		switch raw[i] {
		case 0:
			return 0, refuse(field, `must not contain NUL (\u0000)`)
		case '"':
			return i + 1, nil
		case '\\':
			if i+1 >= len(raw) || raw[i+1] != 'u' {
				i += 2
				continue
			}
			r, ok := hex4(raw, i+2)
			if !ok {
				i += 2 // malformed: the decoder says so
				continue
			}
			i += 6
			switch {
			case r == 0:
				return 0, refuse(field, `must not contain NUL (\u0000)`)
			case 0xDC00 <= r && r <= 0xDFFF:
				return 0, refuse(field, `must not contain a lone UTF-16 surrogate (\u%04x)`, r)
			case 0xD800 <= r && r <= 0xDBFF:
				// A high surrogate must be followed by a low one.
				if i+1 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					if lo, ok := hex4(raw, i+2); ok && 0xDC00 <= lo && lo <= 0xDFFF {
						i += 6
						continue
					}
				}
				return 0, refuse(field, `must not contain a lone UTF-16 surrogate (\u%04x)`, r)
			}
		default:
			i++
		}
	}
	return i, nil
}

// storableNumber reports whether the JSON number n is within the limits.
func storableNumber(n []byte) bool {
	if len(n) > maxNumberLen {
		return false
	}
	e := bytes.IndexAny(n, "eE")
	if e < 0 {
		return true
	}
	exp := bytes.TrimLeft(bytes.TrimLeft(n[e+1:], "+-"), "0")
	if len(exp) > 4 {
		return false
	}
	v := 0
	for _, c := range exp {
		v = v*10 + int(c-'0')
	}
	return v <= maxNumberExponent
}

// hex4 reads the four hex digits at raw[i:].
func hex4(raw []byte, i int) (rune, bool) {
	if i+4 > len(raw) {
		return 0, false
	}
	var r rune
	for _, c := range raw[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
