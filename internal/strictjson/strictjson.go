// Package strictjson refuses the JSON that readers disagree about.
//
// encoding/json keeps the last of two equal keys, where other parsers keep
// the first or refuse, and it matches a key to a struct field whatever its
// case, so {"amount":"1","Amount":"2"} debits 2 and {"AMOUNT":"3"} debits 3.
// A proxy, a validator or an audit log reading the same body could see
// another amount than the ledger posts. This package refuses, at any depth:
//
//   - a key that appears twice in one object (after unescaping, so
//     "\u0061mount" is "amount"),
//   - a key that differs only in case from another key of its object (by
//     Unicode simple folding, as encoding/json compares them, so "ſ" is "s"),
//   - when decoding into a struct, a key that matches a field only in case,
//   - a string, key or value, that is not UTF-8 text: invalid bytes or a
//     lone UTF-16 surrogate escape, which encoding/json silently turns into
//     U+FFFD and other readers refuse or keep.
//
// Everything else is encoding/json's: the syntax, the types, the values.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Why JSON is refused; an *Error wraps one of them.
var (
	ErrDuplicateKey = errors.New("duplicate key")
	ErrCaseVariant  = errors.New("key differs only in case from another")
	ErrFieldCase    = errors.New("key matches a field only in case")
	ErrInvalidUTF8  = errors.New("string is not UTF-8 text")
)

// ErrTrailingData is Unmarshal's error for a body with more after its value.
var ErrTrailingData = errors.New("more than one JSON value")

// Error is a refused key, or a string that is not text.
type Error struct {
	// Path is where, dotted: "metadata.plan", "tiers.0.up_to"; for a key,
	// the key is last. Keys that are not plain printable text are quoted,
	// so a path never carries a control character.
	Path  string
	Key   string // the refused key as decoded; "" for a string value
	Other string // the key or field name it clashes with
	Err   error  // ErrDuplicateKey, ErrCaseVariant, ErrFieldCase or ErrInvalidUTF8
}

func (e *Error) Error() string { return e.Path + ": " + e.Detail() }

func (e *Error) Unwrap() error { return e.Err }

// Detail says what is wrong, in words for the client that sent it.
func (e *Error) Detail() string {
	switch e.Err {
	case ErrInvalidUTF8:
		return "is not UTF-8 text (an invalid byte, or a \\u escape of half a surrogate pair); JSON is UTF-8"
	case ErrDuplicateKey:
		return "appears more than once in its object; send each key once"
	case ErrCaseVariant:
		return fmt.Sprintf("differs only in case from %s in the same object; keys are case-sensitive, send one", quote(e.Other))
	}
	return fmt.Sprintf("unknown field; did you mean %s? field names are case-sensitive", quote(e.Other))
}

// SyntaxError is Check's error for data that is not one JSON value.
type SyntaxError struct {
	Offset int64 // the byte where it went wrong
	msg    string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%s at byte %d", e.msg, e.Offset) }

// Check reports the first refusal in the JSON value in data as an *Error,
// or a *SyntaxError if data is not exactly one JSON value.
func Check(data []byte) error { return check(data, nil) }

// Unmarshal decodes data into v as a json.Decoder with
// DisallowUnknownFields does, after refusing what Check refuses and, in
// objects decoded into a struct, keys that match a field only in case. Its
// errors are an *Error, ErrTrailingData, or encoding/json's own
// (*json.SyntaxError, *json.UnmarshalTypeError, unknown fields, and the
// errors of the types' UnmarshalJSON methods), so callers can keep mapping
// those as they do.
//
// A struct field tagged `strictjson:"-"` is not looked into: its value is
// raw JSON that whoever decodes it later checks, such as an event of a
// batch, which is rejected on its own rather than failing the batch. Its
// syntax is still checked: it is part of the document.
func Unmarshal(data []byte, v any) error {
	err := check(data, reflect.TypeOf(v))
	var syntax *SyntaxError
	if err != nil && !errors.As(err, &syntax) {
		return err
	}
	// Malformed JSON is said in encoding/json's words, which callers
	// already map; the decoder finds it too.
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if derr := dec.Decode(v); derr != nil {
		return derr
	}
	if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
		return ErrTrailingData
	}
	// Only if this scanner is stricter than encoding/json, which the fuzz
	// test says it is not: refuse rather than trust.
	return err
}

// quote shows a key in a message: plain printable keys as they are,
// anything else Go-quoted, at most about 64 bytes.
func quote(s string) string {
	if len(s) > 64 {
		cut := 64
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strconv.Quote(s)
}

// pathElem is one key in an Error's Path.
func pathElem(key string) string {
	if key == "" || len(key) > 64 || strings.ContainsAny(key, `."`) || strings.IndexFunc(key, func(r rune) bool {
		return !unicode.IsPrint(r) || r == utf8.RuneError
	}) >= 0 {
		return quote(key)
	}
	return key
}
