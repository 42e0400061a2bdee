// Package pgtest starts a throwaway PostgreSQL server for tests from the
// Debian postgresql package's binaries: initdb into a temporary directory,
// listening on 127.0.0.1 only, as the postgres user when run as root. Without
// the binaries a test is skipped, except under CI (CI=true), where it fails.
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
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// Cluster is a PostgreSQL server of one test binary, started at first use
// on a free 127.0.0.1 port in a temporary directory. The test binary's
// TestMain stops it.
type Cluster struct {
	once      sync.Once
	err       error
	base      string // postgres://postgres@127.0.0.1:PORT
	dir, bin  string
	asRoot    bool
	databases atomic.Int64
}

// Base returns the cluster's address (postgres://postgres@127.0.0.1:PORT), starting it if needed. Without
// PostgreSQL the test is skipped, except under CI, where it fails.
func (c *Cluster) Base(t testing.TB) string {
	t.Helper()
	c.once.Do(func() { c.err = c.start() })
	if c.err != nil {
		if os.Getenv("CI") == "true" || !errors.Is(c.err, ErrNoPostgres) {
			t.Fatalf("PostgreSQL: %v", c.err)
		}
		t.Skipf("PostgreSQL: %v (install the Debian package postgresql)", c.err)
	}
	return c.base
}

// ErrNoPostgres: the server binaries are not installed.
var ErrNoPostgres = errors.New("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")

// postgresBin finds the newest installed server version's binaries.
func postgresBin() (string, error) {
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		return "", ErrNoPostgres
	}
	sort.Slice(found, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(found[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(found[j]))))
		return vi > vj
	})
	return filepath.Dir(found[0]), nil
}

// run runs a PostgreSQL binary, as the postgres user when we are root
// (the server refuses to run as root).
func (c *Cluster) run(name string, args ...string) error {
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.asRoot {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	out, err := cmd.CombinedOutput()
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
		return err
	}
	if c.asRoot {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(c.dir, uid, gid); err != nil {
			return err
		}
	}
	data := filepath.Join(c.dir, "data")
	if err := c.run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	// fsync off: the tests crash projections, never the database.
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories=%s -c fsync=off -c max_connections=40", port, c.dir)
	if err := c.run("pg_ctl", "-D", data, "-l", filepath.Join(c.dir, "log"), "-o", opts, "-w", "-t", "60", "start"); err != nil {
		return err
	}
	c.base = fmt.Sprintf("postgres://postgres@127.0.0.1:%d", port)
	return nil
}

// CreateDatabase creates a fresh database and returns its DSN for the pgx
// driver.
func (c *Cluster) CreateDatabase(t testing.TB) string {
	t.Helper()
	base := c.Base(t)
	name := fmt.Sprintf("t%d", c.databases.Add(1))
	admin, err := sql.Open("pgx", base+"/postgres?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	return base + "/" + name + "?sslmode=disable"
}

// Stop stops the server and removes its files.
func (c *Cluster) Stop() {
	if c.base != "" {
		if err := c.run("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "stop"); err != nil {
			fmt.Fprintln(os.Stderr, "stop PostgreSQL:", err)
		}
	}
	if c.dir != "" {
		os.RemoveAll(c.dir)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
