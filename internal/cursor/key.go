package cursor

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// Key is the position of a list whose rows have text ids rather than UUIDs
// (customers, under the app's own ids): the (created_at, id) of the last
// row of a page, in the same opaque form as Cursor, base64url of
// "<unix microseconds>.<id>".
type Key struct {
	At time.Time
	ID string
}

func (k Key) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(k.At.UnixMicro(), 10) + "." + k.ID))
}

// ParseKey reads a Key's string form.
func ParseKey(s string) (Key, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Key{}, ErrMalformed
	}
	micros, id, ok := strings.Cut(string(b), ".") // the number has no dot; the id may
	if !ok || id == "" {
		return Key{}, ErrMalformed
	}
	n, err := strconv.ParseInt(micros, 10, 64)
	if err != nil {
		return Key{}, ErrMalformed
	}
	return Key{At: time.UnixMicro(n).UTC(), ID: id}, nil
}
