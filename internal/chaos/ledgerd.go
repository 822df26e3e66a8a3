package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"time"
)

// PosterShards is the poster shard count every ledgerd of the suite runs
// with (ledgerd's default on 2 cores), fixed so that which customers share
// a shard — and so a hot counter row — does not depend on the machine.
const PosterShards = 4

// Ledgerd is one ledgerd configuration, started, killed and started again
// by a scenario. Its environment is a clean one: nothing of the user's
// DATABASE_URL or LEDGER_* settings can point it elsewhere.
type Ledgerd struct {
	Base    string // http://127.0.0.1:port
	LogPath string
	Starts  int // processes started
	Kills   int // of them killed with SIGKILL

	bin  string
	env  []string
	proc *Proc
	hc   *http.Client
}

// NewAdminKey is a strong admin key: a prefix and 64 random hex digits.
func NewAdminKey() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "chaos_admin_" + hex.EncodeToString(b)
}

// LedgerdConfig is what a ledgerd of the suite is pointed at.
type LedgerdConfig struct {
	Bin         string
	DataDir     string
	DatabaseURL string
	NATSURL     string
	AdminKey    string
	LogPath     string
	Extra       map[string]string // more LEDGER_* settings, winning over the above
}

// NewLedgerd prepares a ledgerd on a free port; Start runs it.
func NewLedgerd(c LedgerdConfig) (*Ledgerd, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	set := map[string]string{
		"DATABASE_URL":         c.DatabaseURL,
		"NATS_URL":             c.NATSURL,
		"LEDGER_DATA_DIR":      c.DataDir,
		"LEDGER_HTTP_ADDR":     addr,
		"LEDGER_ADMIN_KEY":     c.AdminKey,
		"LEDGER_POSTER_SHARDS": strconv.Itoa(PosterShards),
		"LEDGER_LOG_LEVEL":     "info",
	}
	for k, v := range c.Extra {
		set[k] = v
	}
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "TZ"} {
		if v := os.Getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+set[k])
	}
	return &Ledgerd{Base: "http://" + addr, LogPath: c.LogPath, bin: c.Bin, env: env,
		hc: &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: nil}}}, nil
}

// Start runs a new ledgerd process and waits up to timeout until /readyz
// answers 200.
func (l *Ledgerd) Start(ctx context.Context, timeout time.Duration) error {
	if l.proc != nil && l.proc.Running() {
		return fmt.Errorf("ledgerd is already running (pid %d)", l.proc.Pid())
	}
	p, err := StartProc(ProcSpec{Name: "ledgerd", Bin: l.bin, Env: l.env, LogPath: l.LogPath})
	if err != nil {
		return err
	}
	l.proc = p
	l.Starts++
	if err := l.WaitReady(ctx, timeout); err != nil {
		return fmt.Errorf("%w\nledgerd log:\n%s", err, Tail(l.LogPath, 20))
	}
	return nil
}

// Ready says whether /readyz answers 200 now.
func (l *Ledgerd) Ready(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.Base+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := l.hc.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// WaitReady polls /readyz until it answers 200, the process exits, or
// timeout passes.
func (l *Ledgerd) WaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if l.Ready(ctx) {
			return nil
		}
		if !l.proc.Running() {
			return fmt.Errorf("ledgerd exited before it was ready: %v", l.proc.ExitErr())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ledgerd not ready after %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Running says whether the current process is alive.
func (l *Ledgerd) Running() bool { return l.proc != nil && l.proc.Running() }

// ExitErr is how the last process ended.
func (l *Ledgerd) ExitErr() error {
	if l.proc == nil {
		return nil
	}
	return l.proc.ExitErr()
}

// CPU is the CPU time (user + system) the running process has used.
func (l *Ledgerd) CPU() (time.Duration, error) {
	if l.proc == nil {
		return 0, fmt.Errorf("ledgerd never started")
	}
	return procCPU(l.proc.Pid())
}

// Kill9 kills the running ledgerd with SIGKILL.
func (l *Ledgerd) Kill9() error {
	if l.proc == nil {
		return fmt.Errorf("ledgerd never started")
	}
	if err := l.proc.Kill9(); err != nil {
		return err
	}
	l.Kills++
	return nil
}

// Stop interrupts ledgerd, which drains its poster and exits 0.
func (l *Ledgerd) Stop() error {
	if l.proc == nil {
		return nil
	}
	return l.proc.Stop(45 * time.Second)
}
