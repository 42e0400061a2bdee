package env

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// nodePackages are the directories (relative to the module root, with
// everything below them) whose code runs inside a node and must take time
// and randomness from its Env.
var nodePackages = []string{"cdc", "connectors", "batch", "storage", "raftlog", "meta", "partition", "cluster", "groups", "streams", "eventstore", "kafka", "server", "replica", "transport", "controller", "leaders"}

// worldAccess matches reads of the wall clock, runtime timers and
// randomness that bypass an Env.
var worldAccess = regexp.MustCompile(`time\.(Now|Since|Until|NewTimer|NewTicker|AfterFunc|After|Tick|Sleep)\(|context\.With(Timeout|Deadline)(Cause)?\(|"crypto/rand"|"math/rand|uuid\.(New|NewString|NewRandom|NewV6|NewV7)\(`)

// notYetThreaded counts, per file and call, the uses still allowed, each
// with the reason. A new use fails the test; a removed one must be struck
// from this list (the test fails then too, so the list never grows stale).
var notYetThreaded = map[string]map[string]int{
	// Real socket deadlines and per-request latency on the real network: they
	// move to Env when the network does.
	"kafka/conn.go": {"time.Now(": 3, "time.Since(": 1},
	// The same socket deadlines during a connection's SASL exchange.
	"kafka/sasl.go": {"time.Now(": 3},
	// Write and idle-read deadlines of node-to-node sockets, and the read
	// deadline of a liveness probe: the kernel compares them with the wall
	// clock.
	"transport/peer.go": {"time.Now(": 2},
	"transport/tcp.go":  {"time.Now(": 1},
	"transport/join.go": {"time.Now(": 1},
	// The pause after a failed Accept on the real listener.
	"kafka/server.go": {"time.Sleep(": 1},
	// A TLS handshake's bound on a real socket: crypto/tls sets the socket's
	// deadline from the context's.
	"kafka/listener.go": {"context.WithTimeout(": 1},
	// The wait for the next message of a PostgreSQL replication connection:
	// pgconn sets the socket's deadline from the context's.
	"cdc/postgres/source.go": {"context.WithDeadline(": 1},
	// The spacing of the collections a refused decompression bomb forces:
	// a process-wide bound on the collector's work, which no node state
	// depends on.
	"batch/decompress.go": {"time.Now(": 1},
	// The crash-simulating filesystem tears writes with a source its
	// caller seeds.
	"storage/vfs/crash.go": {`"math/rand`: 1},
}

// TestNodeCodeUsesTheEnv fails, naming the line, when code inside a node
// reads the wall clock, sets a runtime timer or draws randomness itself
// instead of through its Env (beyond the uses listed in notYetThreaded).
func TestNodeCodeUsesTheEnv(t *testing.T) {
	found := map[string]map[string]int{}
	for _, dir := range nodePackages {
		err := filepath.WalkDir(filepath.Join("..", dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			return scanFile(t, path, found)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for file, calls := range notYetThreaded {
		for call, n := range calls {
			if found[file][call] < n {
				t.Errorf("%s: %d uses of %s left, the allowance says %d: lower it in notYetThreaded", file, found[file][call], call, n)
			}
		}
	}
}

// scanFile records the world accesses of one file in found and reports
// those beyond its allowance.
func scanFile(t *testing.T, path string, found map[string]map[string]int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rel := filepath.ToSlash(strings.TrimPrefix(path, ".."+string(filepath.Separator)))
	lines := bufio.NewScanner(f)
	for number := 1; lines.Scan(); number++ {
		line := strings.TrimSpace(lines.Text())
		if strings.HasPrefix(line, "//") {
			continue
		}
		for _, call := range worldAccess.FindAllString(line, -1) {
			call = strings.TrimSuffix(call, `"`) // imports count by path prefix: "crypto/rand, "math/rand
			if found[rel] == nil {
				found[rel] = map[string]int{}
			}
			found[rel][call]++
			if found[rel][call] > notYetThreaded[rel][call] {
				t.Errorf("%s:%d: %s outside package env: take it from the component's env.Env (env.WithTimeout for a context) (%s)", rel, number, call, line)
			}
		}
	}
	return lines.Err()
}
