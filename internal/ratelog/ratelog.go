// Package ratelog keeps a failure that repeats many times a second (a
// database that is down, a broker that is away) from filling the log: a
// Limiter lets one line through per key and interval and counts the lines
// it held back, which the next line it lets through reports.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// DefaultEvery is the interval of a zero Limiter.
const DefaultEvery = 10 * time.Second

// Limiter lets one line per key through each Every. The zero value is
// ready to use. It is safe for concurrent use.
type Limiter struct {
	Every time.Duration    // default DefaultEvery
	Now   func() time.Time // default time.Now

	mu   sync.Mutex
	keys map[string]*state
}

type state struct {
	last time.Time
	held int
}

// Allow reports whether a line for key may be written now and, if so, how
// many lines for key were held back since the last one that was.
func (l *Limiter) Allow(key string) (ok bool, held int) {
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	every := l.Every
	if every <= 0 {
		every = DefaultEvery
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys == nil {
		l.keys = map[string]*state{}
	}
	s := l.keys[key]
	if s == nil {
		s = &state{}
		l.keys[key] = s
	} else if now.Sub(s.last) < every {
		s.held++
		return false, 0
	}
	held, s.held, s.last = s.held, 0, now
	return true, held
}

// Log writes msg at level unless a line with the same msg was written less
// than Every ago; the line says how many were held back ("suppressed").
func (l *Limiter) Log(log *slog.Logger, level slog.Level, msg string, args ...any) {
	ok, held := l.Allow(msg)
	if !ok {
		return
	}
	if held > 0 {
		args = append(args, "suppressed", held)
	}
	log.Log(context.Background(), level, msg, args...)
}
