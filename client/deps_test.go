package client

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// serverPackages are the server's own packages and heavy dependencies, which
// a service importing the SDK must never have to build.
var serverPackages = []string{
	"github.com/cairnlog/cairn/partition",
	"github.com/cairnlog/cairn/cluster",
	"github.com/cairnlog/cairn/storage",
	"github.com/cairnlog/cairn/kafka",
	"github.com/cairnlog/cairn/server",
	"github.com/cairnlog/cairn/streams",
	"github.com/cairnlog/cairn/eventstore",
	"github.com/cairnlog/cairn/batch",
	"github.com/cairnlog/cairn/groups",
	"github.com/cockroachdb/pebble",
	"github.com/twmb/franz-go",
}

// sdkAllowed are the only non-standard packages the client package itself
// may depend on; subpackages may add their own (database/sql drivers are
// the user's choice, so none is imported).
var sdkAllowed = []string{
	"github.com/cairnlog/cairn/client",
	"github.com/cairnlog/cairn/api/cairn/eventstore/v1",
	"connectrpc.com/connect",
	"google.golang.org/protobuf",
	"github.com/google/uuid",
}

func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// goList returns the non-standard dependencies of patterns (test files
// excluded: tests may start a server).
func goList(t *testing.T, patterns ...string) []string {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	args := append([]string{"list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}"}, patterns...)
	out, err := exec.Command(goBin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var deps []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" {
			deps = append(deps, line)
		}
	}
	if len(deps) == 0 {
		t.Fatal("go list found no packages at all")
	}
	return deps
}

// TestNoServerDependencies: nothing under client/ pulls in the server.
func TestNoServerDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	for _, dep := range goList(t, "./...") {
		for _, bad := range serverPackages {
			if under(dep, bad) {
				t.Errorf("client/... depends on server package %s", dep)
			}
		}
	}
}

// TestClientDependenciesAllowed: the client package itself depends only on
// the standard library, the API, connect, protobuf and uuid.
func TestClientDependenciesAllowed(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	for _, dep := range goList(t, ".") {
		ok := false
		for _, allowed := range sdkAllowed {
			ok = ok || under(dep, allowed)
		}
		if !ok {
			t.Errorf("package client depends on %s, which is not in its allowed list", dep)
		}
	}
}
