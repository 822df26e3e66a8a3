package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a project-local PostgreSQL cluster the suite made with initdb
// in a temporary directory, on a free port, trust auth on 127.0.0.1 only,
// fsync on. It is the one the suite may stop: never the system cluster.
type Cluster struct {
	Dir  string // owned by the server's user; data/ and the log are in it
	Port int

	binDir string
	cred   *syscall.Credential // nil when the suite does not run as root
	proc   *Proc
}

// postgresBinDir is the newest /usr/lib/postgresql/*/bin with a server in
// it, else the directory of initdb on PATH. CHAOS_PG_BIN overrides both.
func postgresBinDir() (string, error) {
	if d := os.Getenv("CHAOS_PG_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("no PostgreSQL server binaries (initdb, postgres, pg_ctl): install PostgreSQL 15+ or set CHAOS_PG_BIN")
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// NewCluster runs initdb into a new directory under parent and starts the
// server. As root the cluster belongs to the postgres user, which
// PostgreSQL requires.
func NewCluster(ctx context.Context, parent string) (*Cluster, error) {
	bin, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(parent, "pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, binDir: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL needs another user and there is no postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		// The server's user must reach its directory: parent is the
		// suite's 0700 directory, so it is opened to traversal only.
		if err := os.Chmod(parent, 0o711); err != nil {
			return nil, err
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	if c.Port, err = FreePort(); err != nil {
		return nil, err
	}
	// --no-sync only spares initdb's own fsyncs of the template files; the
	// server runs with fsync on.
	if out, err := c.run(ctx, "initdb", "-D", c.data(), "-A", "trust", "-U", "postgres", "-E", "UTF8",
		"--locale=C", "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cluster) data() string    { return filepath.Join(c.Dir, "data") }
func (c *Cluster) LogPath() string { return filepath.Join(c.Dir, "postgres.log") }

// run runs one of the server's tools as the server's user.
func (c *Cluster) run(ctx context.Context, tool string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, tool), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd.CombinedOutput()
}

// Start runs the server (a child of the suite, so it dies with it) and
// waits until it accepts connections. After StopImmediate it recovers from
// its WAL, as after a crash.
func (c *Cluster) Start(ctx context.Context) error {
	if c.proc != nil && c.proc.Running() {
		return errors.New("postgres is already running")
	}
	p, err := StartProc(ProcSpec{
		Name: "postgres", Bin: filepath.Join(c.binDir, "postgres"),
		Args: []string{"-D", c.data(), "-p", strconv.Itoa(c.Port),
			"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + c.Dir,
			"-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "max_connections=200",
			"-c", "autovacuum=on", "-c", "log_min_messages=warning"},
		Env: []string{"LC_ALL=C", "PATH=" + os.Getenv("PATH")}, LogPath: c.LogPath(), Cred: c.cred,
	})
	if err != nil {
		return err
	}
	c.proc = p
	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		if !p.Running() {
			return fmt.Errorf("postgres exited at start: %v\n%s", p.ExitErr(), Tail(c.LogPath(), 20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not accepting connections after 60 s: %v\n%s", err, Tail(c.LogPath(), 20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// StopImmediate is `pg_ctl stop -m immediate`: every backend is gone at
// once, nothing is checkpointed, and the next start replays the WAL.
func (c *Cluster) StopImmediate(ctx context.Context) error {
	if c.proc == nil || !c.proc.Running() {
		return errors.New("postgres is not running")
	}
	if out, err := c.run(ctx, "pg_ctl", "stop", "-D", c.data(), "-m", "immediate", "-w", "-t", "30"); err != nil {
		return fmt.Errorf("pg_ctl stop -m immediate: %v\n%s", err, out)
	}
	select {
	case <-c.proc.Exited():
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("postgres still running 30 s after pg_ctl stop")
	}
}

// URL is a database's URL on this cluster.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// CreateDatabase makes an empty database (ledgerd migrates it).
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return c.URL(name), nil
}

// Close stops the server (immediately: its data is about to go) and
// removes its directory.
func (c *Cluster) Close() error {
	var err error
	if c.proc != nil && c.proc.Running() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = c.StopImmediate(ctx)
		cancel()
		if err != nil && c.proc.Running() {
			_ = c.proc.Kill9()
		}
	}
	if rerr := os.RemoveAll(c.Dir); rerr != nil && err == nil {
		err = rerr
	}
	return err
}
