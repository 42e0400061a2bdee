package projection

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
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
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/storage/vfs"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pg.stop()
	os.Exit(code)
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// testServer is an in-process Cairn server that a test can restart on the
// same data directory and address.
type testServer struct {
	t   *testing.T
	cfg server.Config
	srv *server.Server
	url string
}

func startServer(t *testing.T, partitions int32) *testServer {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.DefaultPartitions = partitions
	ts := &testServer{t: t, cfg: cfg}
	ts.start()
	// A restart must come back where clients look for it.
	ts.cfg.HTTPAddr, ts.cfg.KafkaAddr = ts.srv.HTTPAddr(), ts.srv.KafkaAddr()
	ts.url = "http://" + ts.srv.HTTPAddr()
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) start() {
	ts.t.Helper()
	s, err := server.Start(ts.cfg, vfs.Default(), slog.New(slog.DiscardHandler))
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.srv = s
}

func (ts *testServer) stop() {
	if ts.srv == nil {
		return
	}
	if err := ts.srv.Close(); err != nil {
		ts.t.Errorf("server close: %v", err)
	}
	ts.srv = nil
}

func (ts *testServer) restart() {
	ts.t.Helper()
	ts.stop()
	ts.start()
}

func (ts *testServer) client(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.New(ts.url, client.WithRetry(10, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// testDB is a database a projection writes to, and how a separate process
// reaches it.
type testDB struct {
	kind   string // "sqlite" or "postgres"
	driver string
	dsn    string
	db     *sql.DB
}

// forEachDB runs body against SQLite and against PostgreSQL: the same test
// proves the same behaviour on both dialects.
func forEachDB(t *testing.T, body func(t *testing.T, d *testDB)) {
	t.Run("sqlite", func(t *testing.T) { body(t, openSQLite(t)) })
	t.Run("postgres", func(t *testing.T) { body(t, openPostgres(t)) })
}

func openSQLite(t *testing.T) *testDB {
	t.Helper()
	// WAL lets the test read while a projection writes; IMMEDIATE
	// transactions take the write lock at BEGIN rather than failing to
	// upgrade a read lock later.
	dsn := "file:" + filepath.Join(t.TempDir(), "read-model.db") + "?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate"
	return openDB(t, "sqlite", "sqlite", dsn)
}

func openPostgres(t *testing.T) *testDB {
	t.Helper()
	base := pg.dsn(t)
	name := fmt.Sprintf("t%d", pg.databases.Add(1))
	admin := openDB(t, "postgres", "pgx", base+"/postgres?sslmode=disable")
	if _, err := admin.db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	return openDB(t, "postgres", "pgx", base+"/"+name+"?sslmode=disable")
}

func openDB(t *testing.T, kind, driver, dsn string) *testDB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
	return &testDB{kind: kind, driver: driver, dsn: dsn, db: db}
}

// pg is the PostgreSQL cluster of this test binary, started at first use
// and stopped by TestMain.
var pg postgresCluster

type postgresCluster struct {
	once      sync.Once
	err       error
	base      string // postgres://postgres@127.0.0.1:PORT
	dir, bin  string
	asRoot    bool
	databases atomic.Int64
}

// dsn returns the cluster's address, starting it if needed. Without
// PostgreSQL the test is skipped, except under CI, where it fails.
func (c *postgresCluster) dsn(t *testing.T) string {
	t.Helper()
	c.once.Do(func() { c.err = c.start() })
	if c.err != nil {
		if os.Getenv("CI") == "true" || !errors.Is(c.err, errNoPostgres) {
			t.Fatalf("PostgreSQL: %v", c.err)
		}
		t.Skipf("PostgreSQL: %v (install the Debian package postgresql)", c.err)
	}
	return c.base
}

var errNoPostgres = errors.New("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")

// postgresBin finds the newest installed server version's binaries.
func postgresBin() (string, error) {
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		return "", errNoPostgres
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
func (c *postgresCluster) run(name string, args ...string) error {
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

func (c *postgresCluster) start() error {
	bin, err := postgresBin()
	if err != nil {
		return err
	}
	c.bin, c.asRoot = bin, os.Geteuid() == 0
	// Not under t.TempDir(): its parents are private to root, and the
	// server runs as postgres.
	if c.dir, err = os.MkdirTemp("", "cairn-projection-pg-"); err != nil {
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

func (c *postgresCluster) stop() {
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
