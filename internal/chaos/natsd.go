package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSServer is a nats-server process with JetStream on a file store the
// suite owns, so it can be killed and started again on the same store or an
// emptied one.
type NATSServer struct {
	Port     int
	StoreDir string
	LogPath  string

	bin  string
	proc *Proc
}

// StartNATS starts a nats-server on a free port with its store under dir.
func StartNATS(ctx context.Context, bin, dir string) (*NATSServer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	s := &NATSServer{Port: port, StoreDir: filepath.Join(dir, "store"), LogPath: filepath.Join(dir, "nats-server.log"), bin: bin}
	return s, s.Start(ctx)
}

// URL is the client URL.
func (s *NATSServer) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(s.Port) }

// Start starts the server (again) and waits until JetStream answers.
func (s *NATSServer) Start(ctx context.Context) error {
	p, err := StartProc(ProcSpec{
		Name: "nats-server", Bin: s.bin,
		// The server name stays the same across restarts: JetStream keeps
		// its state per server name.
		Args:    []string{"-a", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-n", "chaos-nats", "-js", "-sd", s.StoreDir},
		Env:     []string{"PATH=" + os.Getenv("PATH")},
		LogPath: s.LogPath,
	})
	if err != nil {
		return err
	}
	s.proc = p
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := jetStreamReady(ctx, s.URL())
		if err == nil {
			return nil
		}
		if !p.Running() {
			return fmt.Errorf("nats-server exited at start: %v\n%s", p.ExitErr(), Tail(s.LogPath, 20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nats-server: JetStream not ready after 30 s: %v\n%s", err, Tail(s.LogPath, 20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func jetStreamReady(ctx context.Context, url string) error {
	nc, err := nats.Connect(url, nats.Timeout(time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// Kill9 kills the server with SIGKILL.
func (s *NATSServer) Kill9() error { return s.proc.Kill9() }

// EmptyStore removes the JetStream store (the server must be down): the
// next Start begins with no stream and no consumer, as a broker replaced or
// restored from nothing would.
func (s *NATSServer) EmptyStore() error {
	if s.proc != nil && s.proc.Running() {
		return fmt.Errorf("nats-server is running")
	}
	return os.RemoveAll(s.StoreDir)
}

// Close stops the server.
func (s *NATSServer) Close() error {
	if s.proc == nil {
		return nil
	}
	return s.proc.Stop(10 * time.Second)
}
