package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := &Limiter{Every: 10 * time.Second, Now: func() time.Time { return now }}
	steps := []struct {
		advance time.Duration
		key     string
		ok      bool
		held    int
	}{
		{0, "db", true, 0},
		{time.Second, "db", false, 0},
		{time.Second, "db", false, 0},
		{0, "nats", true, 0}, // keys are apart
		{9 * time.Second, "db", true, 2},
		{time.Second, "db", false, 0},
		{10 * time.Second, "db", true, 1},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		ok, held := l.Allow(s.key)
		if ok != s.ok || held != s.held {
			t.Errorf("step %d (%s): Allow = %v, %d; want %v, %d", i, s.key, ok, held, s.ok, s.held)
		}
	}
}

func TestLogSaysWhatItHeldBack(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := &Limiter{Every: time.Minute, Now: func() time.Time { return now }}
	for range 100 {
		l.Log(log, slog.LevelError, "outbox relay", "err", "connection refused")
		now = now.Add(100 * time.Millisecond)
	}
	now = now.Add(time.Minute)
	l.Log(log, slog.LevelError, "outbox relay", "err", "connection refused")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines for 101 failures, want 2:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[1], "suppressed=99") {
		t.Fatalf("second line does not count the 99 held back: %s", lines[1])
	}
}
