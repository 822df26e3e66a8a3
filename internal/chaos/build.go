package chaos

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Binaries are the programs the suite runs, built once per test binary.
type Binaries struct {
	Ledgerd, Ledgerctl, NATSServer string
}

// goCommand is the go tool: the one on PATH, or the one this test binary
// was built with.
func goCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// Build compiles ledgerd, ledgerctl and nats-server (from the nats-server
// module go.mod already requires, so the version is the one ledgerd is
// tested with) into dir. No race detector: these are the programs as
// shipped, and the test process is what `go test -race` instruments.
func Build(ctx context.Context, dir string) (Binaries, error) {
	b := Binaries{
		Ledgerd:    filepath.Join(dir, "ledgerd"),
		Ledgerctl:  filepath.Join(dir, "ledgerctl"),
		NATSServer: filepath.Join(dir, "nats-server"),
	}
	for _, x := range []struct{ out, pkg string }{
		{b.Ledgerd, "github.com/creditledger/creditledger/cmd/ledgerd"},
		{b.Ledgerctl, "github.com/creditledger/creditledger/cmd/ledgerctl"},
		{b.NATSServer, "github.com/nats-io/nats-server/v2"},
	} {
		cmd := exec.CommandContext(ctx, goCommand(), "build", "-o", x.out, x.pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %v\n%s", x.pkg, err, out)
		}
	}
	return b, nil
}

// FreePort asks the kernel for a free loopback port. Another process could
// take it before ours listens; the start then fails and says so.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
