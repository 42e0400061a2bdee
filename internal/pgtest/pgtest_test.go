package pgtest

import (
	"bufio"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSkips(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		ci   bool
		skip bool
	}{
		{"no binaries on a workstation", ErrNoPostgres, false, true},
		{"no binaries under CI", ErrNoPostgres, true, false},
		{"wrapped, on a workstation", fmt.Errorf("start: %w", ErrNoPostgres), false, true},
		{"a broken install on a workstation", errors.New("initdb: exit status 1"), false, false},
		{"a broken install under CI", errors.New("initdb: exit status 1"), true, false},
	} {
		if got := skips(tc.err, tc.ci); got != tc.skip {
			t.Errorf("%s: skips = %v, want %v", tc.name, got, tc.skip)
		}
	}
}

// requireBinaries applies Base's rule (skip, or fail under CI) to tests
// that start clusters in another process.
func requireBinaries(t *testing.T) {
	t.Helper()
	if _, err := postgresBin(); err != nil {
		if skips(err, os.Getenv("CI") == "true") {
			t.Skipf("PostgreSQL: %v", err)
		}
		t.Fatal(err)
	}
}

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestCluster: databases are separate and reachable on 127.0.0.1 only,
// and Stop leaves neither a server nor files behind.
func TestCluster(t *testing.T) {
	var c Cluster
	defer c.Stop()
	one, two := c.CreateDatabase(t), c.CreateDatabase(t)
	if one == two || !strings.HasPrefix(one, "postgres://postgres@127.0.0.1:") {
		t.Fatalf("DSNs %q and %q", one, two)
	}
	a, b := open(t, one), open(t, two)
	if _, err := a.Exec(`CREATE TABLE only_in_one (x INT)`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.QueryRow(`SELECT count(*) FROM information_schema.tables WHERE table_name = 'only_in_one'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the second database sees %d tables of the first (%v)", n, err)
	}
	var listen string
	if err := a.QueryRow(`SHOW listen_addresses`).Scan(&listen); err != nil || listen != "127.0.0.1" {
		t.Fatalf("listen_addresses %q (%v)", listen, err)
	}
	dir, pid := c.dir, postmasterPID(t, c.dir)
	a.Close()
	b.Close()

	c.Stop()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Stop, %s: %v", dir, err)
	}
	if alive(pid) {
		t.Errorf("after Stop, postmaster %d is still running", pid)
	}
	c.Stop() // a second Stop has nothing left to do
}

func postmasterPID(t *testing.T, dir string) int {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(raw), "\n", 2)[0])
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	return pid
}

// alive tells whether a process runs: it exists and is not a zombie
// waiting for init to reap it.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces, so read after its ')'.
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// helperEnv makes the test binary run TestOrphanHelper for real.
const helperEnv = "PGTEST_ORPHAN_HELPER"

// TestOrphanHelper is a test binary that starts a server and dies without
// stopping it; TestWatchdogStopsOrphanedServer runs it.
func TestOrphanHelper(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("a helper process of TestWatchdogStopsOrphanedServer")
	}
	var c Cluster
	c.Base(t)
	fmt.Printf("dir %s\n", c.dir)
	time.Sleep(time.Minute) // killed long before
}

// TestWatchdogStopsOrphanedServer: a test binary killed with SIGKILL, so
// that its TestMain never stops its server, still leaves no server and no
// files behind.
func TestWatchdogStopsOrphanedServer(t *testing.T) {
	requireBinaries(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestOrphanHelper$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	dir := ""
	lines := bufio.NewScanner(out)
	for dir == "" && lines.Scan() {
		if d, ok := strings.CutPrefix(lines.Text(), "dir "); ok {
			dir = d
		}
	}
	if dir == "" {
		t.Fatalf("the helper said no directory: %v", lines.Err())
	}
	pid := postmasterPID(t, dir)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	deadline := time.Now().Add(30 * time.Second)
	for alive(pid) || exists(dir) {
		if time.Now().After(deadline) {
			t.Fatalf("30s after the helper died: postmaster %d alive %v, %s exists %v", pid, alive(pid), dir, exists(dir))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
