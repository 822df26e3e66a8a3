// Package cursor is the one position format of every list ordered newest
// first by (created_at, id): API keys, webhook endpoints, journal entries,
// top-ups and invoices.
package cursor

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// ErrMalformed is a cursor no list returned.
var ErrMalformed = errors.New("malformed cursor")

// Cursor is the (created_at, id) of the last row of a page. Its string form
// is opaque to clients: base64url of "<unix microseconds>.<uuid>", exact
// for the database's microsecond timestamps, so no row is skipped or
// repeated.
type Cursor struct {
	At time.Time
	ID uuid.UUID
}

func (c Cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.At.UnixMicro(), 10) + "." + c.ID.String()))
}

// Parse reads a cursor's string form.
func Parse(s string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, ErrMalformed
	}
	micros, rest, ok := strings.Cut(string(b), ".")
	if !ok {
		return Cursor{}, ErrMalformed
	}
	n, err := strconv.ParseInt(micros, 10, 64)
	if err != nil {
		return Cursor{}, ErrMalformed
	}
	id, err := uuid.Parse(rest)
	if err != nil {
		return Cursor{}, ErrMalformed
	}
	return Cursor{At: time.UnixMicro(n).UTC(), ID: id}, nil
}

// Next is the string form of a next page's cursor: "" when there is none.
func Next(c *Cursor) string {
	if c == nil {
		return ""
	}
	return c.String()
}

// Page cuts rows, read with a limit of limit+1, to limit, and returns the
// cursor of the next page: nil when rows held no more than limit.
func Page[T any](rows []T, limit int, at func(T) Cursor) ([]T, *Cursor) {
	if len(rows) <= limit {
		return rows, nil
	}
	rows = rows[:limit]
	c := at(rows[limit-1])
	return rows, &c
}

// PageSQL appends to q (a query with a WHERE clause, whose arguments are
// args) the page after the cursor, newest first, one row more than limit so
// Page can tell whether another page follows.
func PageSQL(q string, args []any, after *Cursor, limit int) (string, []any) {
	if after != nil {
		q += ` AND (created_at, id) < ($` + strconv.Itoa(len(args)+1) + `, $` + strconv.Itoa(len(args)+2) + `)`
		args = append(args, after.At, after.ID)
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT $` + strconv.Itoa(len(args)+1)
	return q, append(args, limit+1)
}
