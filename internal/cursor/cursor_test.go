package cursor

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestRoundTrip(t *testing.T) {
	c := Cursor{At: time.Date(2026, 11, 22, 23, 59, 59, 123456000, time.UTC), ID: uuid.New()}
	got, err := Parse(c.String())
	if err != nil || !got.At.Equal(c.At) || got.ID != c.ID {
		t.Fatalf("Parse(%q) = %+v, %v; want %+v", c.String(), got, err, c)
	}
}

func TestMalformed(t *testing.T) {
	for _, s := range []string{"", "!!", "bm90LWEtY3Vyc29y", Cursor{ID: uuid.New()}.String()[:10]} {
		if _, err := Parse(s); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) err %v, want ErrMalformed", s, err)
		}
	}
}

func TestPage(t *testing.T) {
	rows := []int{5, 4, 3}
	at := func(n int) Cursor { return Cursor{At: time.UnixMicro(int64(n))} }
	for _, tc := range []struct {
		limit, n int
		next     int64 // -1: no next page
	}{{3, 3, -1}, {5, 3, -1}, {2, 2, 4}, {1, 1, 5}} {
		got, next := Page(rows, tc.limit, at)
		if len(got) != tc.n || (next == nil) != (tc.next < 0) || (next != nil && next.At.UnixMicro() != tc.next) {
			t.Errorf("Page(limit %d) = %v, %v", tc.limit, got, next)
		}
	}
}

func TestKeyRoundTrip(t *testing.T) {
	for _, id := range []string{"acme", "a.b.c", "x@y.example:1"} {
		k := Key{At: time.Date(2026, 11, 22, 23, 59, 59, 123456000, time.UTC), ID: id}
		got, err := ParseKey(k.String())
		if err != nil || !got.At.Equal(k.At) || got.ID != k.ID {
			t.Errorf("ParseKey(%q) = %+v, %v; want %+v", k.String(), got, err, k)
		}
	}
	for _, s := range []string{"", "!!", "bm90LWEtY3Vyc29y", Key{ID: ""}.String()} {
		if _, err := ParseKey(s); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseKey(%q) err %v, want ErrMalformed", s, err)
		}
	}
}
