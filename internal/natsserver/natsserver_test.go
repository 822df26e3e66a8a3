package natsserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// freePort returns a port nobody listens on at the moment of the call.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestStart(t *testing.T) {
	tests := []struct {
		name string
		// addr returns the Options.Addr to use; it may occupy ports for the
		// duration of the test.
		addr func(t *testing.T) string
		// wantPort reports whether the port actually used is acceptable.
		wantPort func(requested string, got int) bool
	}{
		{
			name:     "ephemeral port",
			addr:     func(*testing.T) string { return "127.0.0.1:0" },
			wantPort: func(_ string, got int) bool { return got != 0 },
		},
		{
			name:     "free fixed port is used as asked",
			addr:     func(t *testing.T) string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) },
			wantPort: func(req string, got int) bool { return strings.HasSuffix(req, fmt.Sprintf(":%d", got)) },
		},
		{
			name: "busy port falls back to an ephemeral one",
			addr: func(t *testing.T) string {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
				return l.Addr().String()
			},
			wantPort: func(req string, got int) bool { return got != 0 && !strings.HasSuffix(req, fmt.Sprintf(":%d", got)) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			addr := tt.addr(t)
			s, err := Start(ctx, Options{Addr: addr, StoreDir: t.TempDir(), Logger: testLogger(t)})
			if err != nil {
				t.Fatalf("Start(%s): %v", addr, err)
			}
			defer s.Shutdown()

			host, port := splitURL(t, s.ClientURL())
			if host != "127.0.0.1" || !tt.wantPort(addr, port) {
				t.Fatalf("ClientURL() = %s for Addr %s", s.ClientURL(), addr)
			}
			js := connect(t, s.ClientURL())
			stream := createStream(ctx, t, js)
			publish(ctx, t, js, "hello")
			if got := fetchOne(ctx, t, stream); got != "hello" {
				t.Fatalf("consumed %q, want %q", got, "hello")
			}
		})
	}
}

func TestRestartKeepsMessages(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	opts := Options{Addr: "127.0.0.1:0", StoreDir: dir, Logger: testLogger(t)}

	s, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	js := connect(t, s.ClientURL())
	createStream(ctx, t, js)
	publish(ctx, t, js, "survives")
	s.Shutdown()
	s.Shutdown() // a second call must be harmless

	s, err = Start(ctx, opts)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer s.Shutdown()
	js = connect(t, s.ClientURL())
	stream, err := js.Stream(ctx, "TEST")
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	if got := fetchOne(ctx, t, stream); got != "survives" {
		t.Fatalf("after restart consumed %q, want %q", got, "survives")
	}
}

func TestStartRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no store dir", Options{Addr: "127.0.0.1:0"}, "StoreDir"},
		{"no port", Options{Addr: "127.0.0.1", StoreDir: "x"}, "address"},
		{"port out of range", Options{Addr: "127.0.0.1:70000", StoreDir: "x"}, "bad port"},
		{"port not a number", Options{Addr: "127.0.0.1:nats", StoreDir: "x"}, "bad port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Start(t.Context(), tt.opts)
			if err == nil {
				s.Shutdown()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func splitURL(t *testing.T, u string) (string, int) {
	t.Helper()
	hostport, ok := strings.CutPrefix(u, "nats://")
	if !ok {
		t.Fatalf("ClientURL() = %q, want nats://host:port", u)
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	var p int
	fmt.Sscan(port, &p)
	return host, p
}

func connect(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func createStream(ctx context.Context, t *testing.T, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     "TEST",
		Subjects: []string{"test.>"},
		Storage:  jetstream.FileStorage,
	})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	return stream
}

func publish(ctx context.Context, t *testing.T, js jetstream.JetStream, body string) {
	t.Helper()
	if _, err := js.Publish(ctx, "test.a", []byte(body)); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func fetchOne(ctx context.Context, t *testing.T, stream jetstream.Stream) string {
	t.Helper()
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:   "reader",
		AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatalf("create consumer: %v", err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	for msg := range batch.Messages() {
		if err := msg.Ack(); err != nil {
			t.Fatalf("ack: %v", err)
		}
		return string(msg.Data())
	}
	if err := batch.Error(); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	t.Fatal("fetch returned no message")
	return ""
}

// The fallback for a port taken between probe and listen relies on start
// failing promptly, rather than hanging or exiting the process, when the
// server cannot listen.
func TestStartOnBusyPortFails(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	port := l.Addr().(*net.TCPAddr).Port
	s, err := start(ctx, Options{StoreDir: t.TempDir()}, "127.0.0.1", port, slog.New(slog.DiscardHandler))
	if err == nil {
		s.Shutdown()
		t.Fatal("start on a busy port succeeded")
	}
	if ctx.Err() != nil {
		t.Fatalf("start waited for the deadline instead of failing: %v", err)
	}
	t.Logf("start: %v", err)
}
