package pgtest

import (
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// ErrNoPostgres: the server binaries are not installed.
var ErrNoPostgres = errors.New("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")

const (
	// startAttemptsMax bounds the starts on a fresh port: another process
	// may take the free port found between our probe and the server's bind.
	startAttemptsMax = 3
	// startTimeoutSeconds bounds one start (pg_ctl -t).
	startTimeoutSeconds = 60
	// watchdogSecondsMax bounds the watchdog's life; no test binary runs
	// this long (go test's own timeout is shorter).
	watchdogSecondsMax = 6 * 60 * 60
	// connectionsMax is the server's max_connections: enough for the
	// tests' pools, small enough to keep its shared memory modest.
	connectionsMax = 40
)

// Cluster is the PostgreSQL server of one test binary, started at first
// use on a free 127.0.0.1 port in a temporary directory. Its zero value is
// ready; TestMain calls Stop. It is safe for concurrent use.
type Cluster struct {
	// Logical starts the server with wal_level=logical, replication slots
	// and WAL senders for logical replication tests, and a small
	// logical_decoding_work_mem so that modest transactions already stream
	// in progress (pgoutput protocol v2). Set it before the first use.
	Logical bool

	once      sync.Once
	err       error
	base      string // postgres://postgres@127.0.0.1:PORT
	dir, bin  string
	asRoot    bool
	watchdog  *exec.Cmd
	databases atomic.Int64
}

// Base returns the server's address, postgres://postgres@127.0.0.1:PORT
// (no database), starting the server if needed. Without PostgreSQL the
// test is skipped, except under CI, where it fails; any other failure to
// start fails the test.
func (c *Cluster) Base(t testing.TB) string {
	t.Helper()
	c.once.Do(func() { c.err = c.start() })
	if c.err != nil {
		if skips(c.err, os.Getenv("CI") == "true") {
			t.Skipf("PostgreSQL: %v (install the Debian package postgresql)", c.err)
		}
		t.Fatalf("PostgreSQL: %v", c.err)
	}
	return c.base
}

// skips tells whether a failure to start is a reason to skip rather than
// fail: only missing binaries, and only outside CI.
func skips(err error, ci bool) bool {
	return errors.Is(err, ErrNoPostgres) && !ci
}

// CreateDatabase creates a fresh, empty database and returns its DSN for
// the pgx driver (postgres://postgres@127.0.0.1:PORT/tN?sslmode=disable).
func (c *Cluster) CreateDatabase(t testing.TB) string {
	t.Helper()
	base := c.Base(t)
	name := fmt.Sprintf("t%d", c.databases.Add(1))
	admin, err := sql.Open("pgx", base+"/postgres?sslmode=disable")
	if err != nil {
		t.Fatalf("PostgreSQL: open the admin database: %v", err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("PostgreSQL: create database %s: %v", name, err)
	}
	return base + "/" + name + "?sslmode=disable"
}

// Stop stops the server and removes its files. A Cluster never started
// (or whose start failed) has nothing to stop.
func (c *Cluster) Stop() {
	if c.watchdog != nil {
		// Our own child: it would only clean up after us once we are gone.
		_ = c.watchdog.Process.Kill()
		_ = c.watchdog.Wait()
		c.watchdog = nil
	}
	if c.base != "" {
		if err := c.run("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "stop"); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: stop PostgreSQL:", err)
		}
		c.base = ""
	}
	if c.dir != "" {
		if err := os.RemoveAll(c.dir); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: remove PostgreSQL's files:", err)
		}
		c.dir = ""
	}
}

// postgresBin finds the newest installed server version's binaries.
func postgresBin() (string, error) {
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		return "", ErrNoPostgres
	}
	version := func(initdb string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
		return v
	}
	sort.Slice(found, func(i, j int) bool { return version(found[i]) > version(found[j]) })
	return filepath.Dir(found[0]), nil
}

// asPostgres is the command prefix that runs a server binary as the
// postgres user, empty when we are not root.
func (c *Cluster) asPostgres() []string {
	if c.asRoot {
		return []string{"runuser", "-u", "postgres", "--"}
	}
	return nil
}

// run runs a PostgreSQL binary (as the postgres user when we are root).
func (c *Cluster) run(name string, args ...string) error {
	argv := append(c.asPostgres(), append([]string{filepath.Join(c.bin, name)}, args...)...)
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func (c *Cluster) start() error {
	bin, err := postgresBin()
	if err != nil {
		return err
	}
	c.bin, c.asRoot = bin, os.Geteuid() == 0
	// Not under t.TempDir(): its parents are private to root, and the
	// server runs as postgres.
	if c.dir, err = os.MkdirTemp("", "cairn-pgtest-"); err != nil {
		return fmt.Errorf("create the server's directory: %w", err)
	}
	if c.asRoot {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(c.dir, uid, gid); err != nil {
			return fmt.Errorf("hand %s to the postgres user: %w", c.dir, err)
		}
	}
	// Before anything is in the directory, so that nothing outlives us.
	if err := c.startWatchdog(); err != nil {
		return err
	}
	data := filepath.Join(c.dir, "data")
	if err := c.run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		port, err := c.startServer(data, attempt)
		if err == nil {
			c.base = fmt.Sprintf("postgres://postgres@127.0.0.1:%d", port)
			return nil
		}
		if !errors.Is(err, errPortTaken) || attempt == startAttemptsMax {
			return err
		}
	}
}

var errPortTaken = errors.New("port taken")

// startServer starts the server on a free port; errPortTaken when another
// process bound the port first.
func (c *Cluster) startServer(data string, attempt int) (port int, err error) {
	port, err = freePort()
	if err != nil {
		return 0, err
	}
	logPath := filepath.Join(c.dir, fmt.Sprintf("postgres-%d.log", attempt))
	// fsync off: tests crash the programs under test, never the database.
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories=%s -c fsync=off -c max_connections=%d", port, c.dir, connectionsMax)
	if c.Logical {
		opts += " " + logicalOptions
	}
	err = c.run("pg_ctl", "-D", data, "-l", logPath, "-o", opts, "-w", "-t", strconv.Itoa(startTimeoutSeconds), "start")
	if err == nil {
		return port, nil
	}
	if log, _ := os.ReadFile(logPath); strings.Contains(string(log), "already in use") {
		return 0, fmt.Errorf("%w: %d: %w", errPortTaken, port, err)
	}
	return 0, fmt.Errorf("%w\n%s", err, tail(logPath))
}

// logicalOptions are the server settings of a Cluster with Logical set.
const logicalOptions = "-c wal_level=logical -c max_replication_slots=20 -c max_wal_senders=20 -c logical_decoding_work_mem=64kB"

// tail is the end of a server log, to explain a failed start.
func tail(path string) string {
	log, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	const bytesMax = 2000
	if len(log) > bytesMax {
		log = log[len(log)-bytesMax:]
	}
	return string(log)
}

// watchdogScript waits for the test binary to end, then stops its server
// and removes its files. After a normal end Stop has done both and killed
// the watchdog; it matters when the binary dies first.
const watchdogScript = `owner=$1 bin=$2 dir=$3 seconds_max=$4; shift 4
waited=0
while kill -0 "$owner" 2>/dev/null && [ "$waited" -lt "$seconds_max" ]; do
	sleep 1
	waited=$((waited + 1))
done
if [ -f "$dir/data/postmaster.pid" ]; then
	"$@" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1
fi
rm -rf "$dir"
`

func (c *Cluster) startWatchdog() error {
	args := append([]string{"-c", watchdogScript, "pgtest-watchdog",
		strconv.Itoa(os.Getpid()), c.bin, c.dir, strconv.Itoa(watchdogSecondsMax)}, c.asPostgres()...)
	cmd := exec.Command("/bin/sh", args...)
	// Its own session: a Ctrl-C that kills the test binary's process
	// group must leave the watchdog to clean up. No stdio: go test waits
	// for the binary's output pipes to close.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the watchdog: %w", err)
	}
	c.watchdog = cmd
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
