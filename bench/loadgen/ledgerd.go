package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ledgerdProcess is one running ledgerd, started and stopped by the harness.
type ledgerdProcess struct {
	cmd     *exec.Cmd
	base    string // http://127.0.0.1:port
	logPath string
	exited  chan struct{}
	waitErr error // set before exited closes
}

// passThroughEnv are the ledgerd settings a benchmark may vary: taken from
// loadgen's own environment when set, so `LEDGER_PG_ISOLATION=repeatable_read
// make bench` measures that.
func passThroughEnv() []string {
	return []string{"LEDGER_PG_ISOLATION", "LEDGER_POSTER_SHARDS", "LEDGER_POSTER_MAX_BATCH", "LEDGER_POSTER_LINGER",
		"LEDGER_NATS_WORKERS", "LEDGER_PPROF_ADDR", "LEDGER_ANALYZE_INTERVAL", "LEDGER_BALANCE_CACHE_MAX_AGE", "GOGC", "GOMEMLIMIT"}
}

// ledgerdEnv is ledgerd's whole environment: a clean one, so a user's
// DATABASE_URL or LEDGER_* settings cannot point the benchmark elsewhere;
// overrides come last and win.
func ledgerdEnv(getenv func(string) string, set map[string]string, overrides map[string]string) []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "TZ"} {
		if v := getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	for _, k := range sortedKeys(set) {
		env = append(env, k+"="+set[k])
	}
	for _, k := range sortedKeys(overrides) {
		env = append(env, k+"="+overrides[k])
	}
	return env
}

// freeLoopbackAddr asks the kernel for a free port. Another process could
// take it before ledgerd listens; ledgerd would then exit and say so.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startLedgerd execs bin with env (which must hold LEDGER_HTTP_ADDR=addr)
// and waits until /readyz answers 200. Its output goes to logPath.
func startLedgerd(ctx context.Context, bin, addr string, env []string, logPath string, hc *http.Client) (*ledgerdProcess, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("ledgerd log: %w", err)
	}
	// The process outlives ctx's cancellation only by WaitDelay: a
	// cancelled run interrupts it (so it drains) rather than killing it.
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 45 * time.Second
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &ledgerdProcess{cmd: cmd, base: "http://" + addr, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	if err := p.waitReady(ctx, hc, 90*time.Second); err != nil {
		_ = p.stop(10 * time.Second)
		return nil, fmt.Errorf("%w\n%s", err, tail(logPath, 20))
	}
	return p, nil
}

func (p *ledgerdProcess) waitReady(ctx context.Context, hc *http.Client, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := hc.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("ledgerd exited before it was ready: %v", p.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ledgerd not ready after %s", timeout)
		}
	}
}

// stop interrupts ledgerd, which drains its poster and exits 0; after
// timeout it is killed and that is an error.
func (p *ledgerdProcess) stop(timeout time.Duration) error {
	select {
	case <-p.exited:
		return exitError(p.waitErr)
	default:
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		return fmt.Errorf("interrupt ledgerd: %w", err)
	}
	select {
	case <-p.exited:
		return exitError(p.waitErr)
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("ledgerd did not stop within %s of SIGINT; killed", timeout)
	}
}

func exitError(err error) error {
	if err != nil {
		return fmt.Errorf("ledgerd exited: %w", err)
	}
	return nil
}

// procStatusKB reads a "VmXXX:   1234 kB" line of /proc/<pid>/status.
func procStatusKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	return parseStatusKB(b, field)
}

func parseStatusKB(status []byte, field string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%s: unexpected %q", field, rest)
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("%s not in /proc status", field)
}

// peakRSS is ledgerd's VmHWM in bytes: the most resident memory since it
// started or since resetPeakRSS.
func (p *ledgerdProcess) peakRSS() (int64, error) {
	kb, err := procStatusKB(p.cmd.Process.Pid, "VmHWM")
	return kb * 1024, err
}

// resetPeakRSS sets VmHWM back to the current RSS (Linux ≥ 4.0, writing 5
// to clear_refs), so each scenario's peak is its own. An error means the
// peak stays the process's since start.
func (p *ledgerdProcess) resetPeakRSS() error {
	return os.WriteFile(filepath.Join("/proc", strconv.Itoa(p.cmd.Process.Pid), "clear_refs"), []byte("5"), 0)
}

// scrape reads ledgerd's poster metrics.
func (p *ledgerdProcess) scrape(ctx context.Context, hc *http.Client) (metricsSnapshot, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/metrics", nil)
	if err != nil {
		return metricsSnapshot{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return metricsSnapshot{}, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return metricsSnapshot{}, fmt.Errorf("scrape metrics: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return metricsSnapshot{}, fmt.Errorf("scrape metrics: status %d", resp.StatusCode)
	}
	return parseSnapshot(b)
}

// logCounts counts the WARN and ERROR lines ledgerd wrote (text or JSON)
// and keeps the first few of each.
func logCounts(path string) (warns, errs int, first []string) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, "level=WARN"), strings.Contains(line, `"level":"WARN"`):
			if warns < 3 {
				first = append(first, truncate(line, 300))
			}
			warns++
		case strings.Contains(line, "level=ERROR"), strings.Contains(line, `"level":"ERROR"`):
			if errs < 3 {
				first = append(first, truncate(line, 300))
			}
			errs++
		}
	}
	return warns, errs, first
}

// tail is the last n lines of a file, for an error message.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "ledgerd log (" + path + "):\n" + strings.Join(lines, "\n")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
