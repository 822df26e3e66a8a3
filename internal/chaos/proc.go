package chaos

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is one child process the suite started and may kill.
type Proc struct {
	Name    string
	LogPath string

	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error // set before exited closes
}

// ProcSpec is what StartProc runs.
type ProcSpec struct {
	Name    string // for messages
	Bin     string
	Args    []string
	Env     []string
	LogPath string              // stdout and stderr are appended here
	Cred    *syscall.Credential // run as this user (PostgreSQL refuses root); nil: as the suite
}

// StartProc execs a process. It gets its own process group, so a Ctrl-C
// meant for the test does not reach it before the suite decides what to do,
// and it is killed (SIGKILL) if the test process dies first — a timed-out
// test leaves no ledgerd, nats-server or postgres behind.
func StartProc(s ProcSpec) (*Proc, error) {
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", s.Name, err)
	}
	fmt.Fprintf(logf, "----- %s: start %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), s.Bin, strings.Join(s.Args, " "))
	cmd := exec.Command(s.Bin, s.Args...)
	cmd.Env = s.Env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: s.Cred}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	p := &Proc{Name: s.Name, LogPath: s.LogPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		fmt.Fprintf(logf, "----- %s: exited: %v\n", time.Now().UTC().Format(time.RFC3339Nano), p.waitErr)
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited closes when the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Running says whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// ExitErr is how the process ended (nil while it runs or after exit 0).
func (p *Proc) ExitErr() error {
	if p.Running() {
		return nil
	}
	return p.waitErr
}

// Kill9 sends SIGKILL and waits until the process is gone.
func (p *Proc) Kill9() error {
	if !p.Running() {
		return fmt.Errorf("%s (pid %d) had already exited: %v", p.Name, p.Pid(), p.waitErr)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill -9 %s: %w", p.Name, err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) still there 10 s after SIGKILL", p.Name, p.Pid())
	}
}

// Stop sends SIGINT and waits up to timeout for a clean exit; after that it
// kills the process, and says so.
func (p *Proc) Stop(timeout time.Duration) error {
	if !p.Running() {
		return nil
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
		return p.waitErr
	case <-time.After(timeout):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
		return fmt.Errorf("%s did not stop within %s of SIGINT; killed", p.Name, timeout)
	}
}

// procCPU reads a process's user + system time from /proc/<pid>/stat
// (fields 14 and 15, in clock ticks of 1/100 s on Linux).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields resume after ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var ticks int64
	for _, x := range f[11:13] { // utime, stime: fields 14, 15 overall
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// Tail is the last n lines of a log file, for a failure message. The child
// may be appending: a torn last line is harmless there.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// LogTail is the last n lines of ledgerd's log that are not INFO lines
// about an HTTP request: the warnings and errors a failure is about.
func LogTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var keep []string
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if strings.Contains(line, "level=INFO") && strings.Contains(line, `msg="http request"`) {
			continue
		}
		if len(line) > 500 {
			line = line[:500] + "…"
		}
		keep = append(keep, line)
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "\n")
}

// Grep returns the lines of a log file containing every one of subs, at
// most max of them, and how many there were.
func Grep(path string, max int, subs ...string) ([]string, int) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0
	}
	var out []string
	n := 0
lines:
	for _, line := range strings.Split(string(b), "\n") {
		for _, s := range subs {
			if !strings.Contains(line, s) {
				continue lines
			}
		}
		n++
		if len(out) < max {
			out = append(out, line)
		}
	}
	return out, n
}
