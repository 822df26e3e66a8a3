package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/creditledger/creditledger/api/problem"
	"github.com/creditledger/creditledger/internal/cursor"
	"github.com/creditledger/creditledger/internal/strictjson"
	"github.com/creditledger/creditledger/ledger"
)

// DecodeJSON reads the request body into v. An empty body leaves v as it
// is, for endpoints whose body is optional. Malformed JSON is a 400
// bad_request; a field of the wrong type, a value its type refuses (an
// amount sent as a number, a timestamp that is not RFC 3339), or a field v
// does not have is a 422 validation_error naming the field. Unknown fields are refused rather than
// ignored: in a money API a misspelt "overage_limt" must not pass silently.
// So, at any depth, is a key sent twice or in two spellings of case, a key
// that matches a field only in case ("Amount"), and a string that is not
// UTF-8: encoding/json would take the last, or the field, or U+FFFD, where
// a proxy or validator reading the same body may take another
// (internal/strictjson).
func DecodeJSON(c *fiber.Ctx, v any) error { return decodeBody(c.Body(), v) }

func decodeBody(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	err := strictjson.Unmarshal(body, v)
	var strict *strictjson.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &strict) && strict.Path == "":
		return problem.New(problem.BadRequest, "malformed JSON: the body "+strict.Detail())
	case errors.As(err, &strict):
		return problem.Invalid(strict.Path, strict.Detail())
	case errors.Is(err, strictjson.ErrTrailingData):
		return problem.New(problem.BadRequest, "malformed JSON: more than one value in the body")
	}
	return decodeProblem(body, v, err)
}

func decodeProblem(body []byte, v any, err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return problem.Newf(problem.BadRequest, "malformed JSON at byte %d", syntax.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problem.New(problem.BadRequest, "malformed JSON: unexpected end of body")
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return problem.Newf(problem.BadRequest, "the body must be a JSON %s", jsonKind(typ.Type.Kind().String()))
		}
		return problem.Invalid(field, "must be a JSON "+jsonKind(typ.Type.Kind().String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return problem.Invalid(field, "unknown field")
	}
	// What is left was refused by a type's own UnmarshalJSON or
	// UnmarshalText method: well-formed JSON with a bad value in it, such as
	// an amount sent as a number or a timestamp that is not RFC 3339. That
	// is a 422 about a field. encoding/json does not say which field, so
	// find it.
	detail := valueDetail(err)
	if field := refusedField(body, v); field != "" {
		return problem.Invalid(field, detail)
	}
	return problem.New(problem.Validation, detail)
}

// valueDetail says what is wrong with a refused value. Only the errors of
// known types are shown, in their own words; another method's error could
// say anything, so it is not echoed.
func valueDetail(err error) string {
	var parse *time.ParseError
	switch {
	case errors.Is(err, ledger.ErrAmountNotString), errors.Is(err, ledger.ErrAmountSyntax),
		errors.Is(err, ledger.ErrAmountScale), errors.Is(err, ledger.ErrAmountRange):
		return err.Error()
	case errors.As(err, &parse):
		return "must be an RFC 3339 timestamp, e.g. 2025-01-31T23:59:59Z"
	}
	return "is not a valid value"
}

// refusedField finds the top-level field of the struct v points to whose
// value in body its type refuses, by decoding each field on its own. It
// returns "" if v is not a struct or the culprit is nested deeper; the
// problem then names no field.
func refusedField(body []byte, v any) string {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return ""
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil {
		return ""
	}
	t := rv.Elem().Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || f.Anonymous {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		// Keys match their fields exactly: decodeBody refused any other
		// spelling before decoding.
		if raw, ok := fields[name]; ok && json.Unmarshal(raw, reflect.New(f.Type).Interface()) != nil {
			return name
		}
	}
	return ""
}

// jsonKind names a Go kind the way a JSON client thinks of it.
func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "map", "struct":
		return "object"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "integer"
	case "float32", "float64":
		return "number"
	}
	return "value of another type"
}

// Page is a page of a list, the shape of every list response.
type Page[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"` // null on the last page
}

// NewPage makes a page; next is "" on the last page.
func NewPage[T any](data []T, next string) Page[T] {
	if data == nil {
		data = []T{} // "data": [], never null
	}
	p := Page[T]{Data: data}
	if next != "" {
		p.NextCursor = &next
	}
	return p
}

// List limits.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// pageAfter is PageQuery for lists whose service takes the parsed cursor
// (nil: the first page).
func pageAfter(c *fiber.Ctx) (limit int, after *cursor.Cursor, err error) {
	limit, s, err := PageQuery(c)
	if err != nil || s == "" {
		return limit, nil, err
	}
	pos, err := cursor.Parse(s)
	if err != nil {
		return 0, nil, problem.Invalid("cursor", "is not a cursor this list returned")
	}
	return limit, &pos, nil
}

// PageQuery reads ?limit= (default 50, at most 500) and ?cursor=.
func PageQuery(c *fiber.Ctx) (limit int, cursor string, err error) {
	limit = DefaultLimit
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return 0, "", problem.Invalid("limit", fmt.Sprintf("must be an integer from 1 to %d", MaxLimit))
		}
		limit = n
	}
	return limit, c.Query("cursor"), nil
}

// seconds is n seconds as a Duration, held at the Duration's bounds rather
// than overflowing: a count of seconds from a request too large to be a
// Duration stays too large, for the service to refuse.
func seconds(n int64) time.Duration {
	const most = int64(math.MaxInt64 / time.Second)
	switch {
	case n > most:
		return math.MaxInt64
	case n < -most:
		return math.MinInt64
	}
	return time.Duration(n) * time.Second
}

// uuidParam reads path parameter name as a UUID. One that is not a UUID
// names nothing: 404, as for an unknown id.
func uuidParam(c *fiber.Ctx, name string) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Params(name))
	if err != nil {
		return id, problem.New(problem.NotFound, notFoundDetail)
	}
	return id, nil
}
