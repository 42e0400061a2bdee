package projection

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/internal/pgtest"
	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/storage/vfs"
)

// pg is the PostgreSQL server of this test binary.
var pg pgtest.Cluster

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
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

// client is a client of the server; opts come after the defaults.
func (ts *testServer) client(t *testing.T, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(ts.url, append([]client.Option{client.WithRetry(10, 50*time.Millisecond)}, opts...)...)
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
	return openDB(t, "postgres", "pgx", pg.CreateDatabase(t))
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
