// Package natsserver runs an embedded NATS server with JetStream inside the
// ledgerd process, so a fresh machine needs no separate broker: when NATS_URL
// is unset, ledgerd starts one of these and connects to it like any client.
package natsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// DefaultAddr is where the embedded server listens unless told otherwise: the
// standard NATS port, on loopback only because it runs without auth.
const DefaultAddr = "127.0.0.1:4222"

// Options configures Start.
type Options struct {
	// Addr is host:port to listen on; empty means DefaultAddr. Port 0 picks
	// an ephemeral port. If the port is taken, Start falls back to an
	// ephemeral port on 127.0.0.1 rather than failing, because a busy 4222
	// usually means another NATS (or another ledgerd) on a developer box.
	Addr string
	// StoreDir is where JetStream keeps streams on disk; required, so that
	// events survive a restart.
	StoreDir string
	// Name is the server name; empty means "ledgerd". JetStream keeps its
	// state per server, so it should not change between restarts.
	Name string
	// Logger receives the server's own log lines (notices at debug level,
	// since an embedded broker's start-up banner is noise to ledgerd's
	// users) and the URL actually used. Nil discards.
	Logger *slog.Logger
}

// Server is a running embedded NATS server.
type Server struct {
	ns  *server.Server
	url string
}

// Start starts the server and returns once it accepts client connections.
// ctx bounds only the start-up; the server runs until Shutdown.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("natsserver: StoreDir is required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	addr := opts.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("natsserver: address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("natsserver: address %q: bad port", addr)
	}
	if host == "" {
		host = "0.0.0.0"
	}

	// Probe first: the server reports a busy port only as a log line, after
	// it has already opened JetStream, so asking the kernel is cheaper and
	// keeps a scary "error listening" out of the logs.
	if port != 0 && !canListen(net.JoinHostPort(host, portStr)) {
		log.Warn("NATS port busy; embedded server falls back to an ephemeral port", "addr", addr)
		host, port = "127.0.0.1", 0
	}
	s, err := start(ctx, opts, host, port, log)
	if err != nil && port != 0 && !canListen(net.JoinHostPort(host, portStr)) {
		// Someone took the port between the probe and the server's listen.
		log.Warn("NATS port taken during start; embedded server falls back to an ephemeral port", "addr", addr)
		s, err = start(ctx, opts, "127.0.0.1", 0, log)
	}
	if err != nil {
		return nil, err
	}
	log.Info("embedded NATS server started", "url", s.url, "store_dir", opts.StoreDir)
	return s, nil
}

func start(ctx context.Context, opts Options, host string, port int, log *slog.Logger) (*Server, error) {
	name := opts.Name
	if name == "" {
		name = "ledgerd"
	}
	if port == 0 {
		port = server.RANDOM_PORT // the server treats 0 as "default port"
	}
	sopts := &server.Options{
		ServerName: name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		// ledgerd owns the process's signals; the server must not exit it.
		NoSigs: true,
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("natsserver: configure: %w", err)
	}
	sl := &slogLogger{log: log}
	ns.SetLoggerV2(sl, false, false, false)
	ns.Start()

	// Start has run the listen synchronously; poll briefly so ctx is honored
	// if something (JetStream recovery) is still settling. The cap keeps a
	// server that neither fails nor becomes ready from hanging ledgerd.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for !ns.ReadyForConnections(50 * time.Millisecond) {
		if err := sl.fatal(); err != nil {
			shutdown(ns)
			return nil, fmt.Errorf("natsserver: start: %w", err)
		}
		if err := ctx.Err(); err != nil {
			shutdown(ns)
			return nil, fmt.Errorf("natsserver: wait for server: %w", err)
		}
	}
	if !ns.JetStreamEnabled() {
		shutdown(ns)
		return nil, errors.New("natsserver: JetStream did not start")
	}

	a, ok := ns.Addr().(*net.TCPAddr)
	if !ok {
		shutdown(ns)
		return nil, errors.New("natsserver: server has no TCP listener")
	}
	ip := a.IP
	if ip.IsUnspecified() {
		// Listening on all interfaces; loopback is the address that works
		// for a client on this machine.
		ip = net.IPv4(127, 0, 0, 1)
	}
	return &Server{ns: ns, url: "nats://" + net.JoinHostPort(ip.String(), strconv.Itoa(a.Port))}, nil
}

// ClientURL is the URL clients connect to, with the port actually bound.
func (s *Server) ClientURL() string { return s.url }

// Shutdown stops the server and waits until it has stopped and flushed
// JetStream to disk. It is safe to call more than once.
func (s *Server) Shutdown() { shutdown(s.ns) }

func shutdown(ns *server.Server) {
	ns.Shutdown()
	ns.WaitForShutdown()
}

func canListen(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// slogLogger adapts the server's printf-style logger to slog. Its Fatalf
// must not exit the process (the server's default logger does); it records
// the error so Start can return it instead.
type slogLogger struct {
	log *slog.Logger

	mu       sync.Mutex
	fatalErr error
}

func (l *slogLogger) fatal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatalErr
}

func (l *slogLogger) Noticef(format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...), "component", "nats")
}

func (l *slogLogger) Warnf(format string, v ...any) {
	l.log.Warn(fmt.Sprintf(format, v...), "component", "nats")
}

func (l *slogLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg, "component", "nats")
	l.mu.Lock()
	if l.fatalErr == nil {
		l.fatalErr = errors.New(msg)
	}
	l.mu.Unlock()
}

func (l *slogLogger) Errorf(format string, v ...any) {
	l.log.Error(fmt.Sprintf(format, v...), "component", "nats")
}

func (l *slogLogger) Debugf(format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...), "component", "nats")
}

func (l *slogLogger) Tracef(format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...), "component", "nats")
}
