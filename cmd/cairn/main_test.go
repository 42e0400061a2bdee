package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// runMainEnv makes the test binary run main() instead of the tests, so the
// process-level behaviour (exit codes, signals) is tested on the real entry
// point.
const runMainEnv = "CAIRN_CLI_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startCluster runs an in-process Kafka broker on 127.0.0.1 for one test and
// returns it and its address.
func startCluster(t *testing.T, options ...kfake.Opt) (*kfake.Cluster, string) {
	t.Helper()
	cluster, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, options...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	return cluster, strings.Join(cluster.ListenAddrs(), ",")
}

type commandResult struct {
	stdout string
	stderr string
	err    error
}

// invocation is one run of the cairn command tree in process.
type invocation struct {
	env   map[string]string
	stdin io.Reader
	args  []string
}

func (i invocation) run(t *testing.T) commandResult {
	t.Helper()
	lookup := func(name string) (string, bool) {
		value, ok := i.env[name]
		return value, ok
	}
	root := newRootCommand(lookup)
	var stdout, stderr bytes.Buffer
	root.SetArgs(i.args)
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	if i.stdin != nil {
		root.SetIn(i.stdin)
	} else {
		root.SetIn(strings.NewReader(""))
	}
	// Every command run by the tests ends well within this; a hang fails
	// the test instead of the whole run.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return commandResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// cairn runs the command tree with args and an empty environment.
func cairn(t *testing.T, args ...string) commandResult {
	t.Helper()
	return invocation{args: args}.run(t)
}

// mustCairn runs the command tree and fails the test if it fails.
func mustCairn(t *testing.T, args ...string) commandResult {
	t.Helper()
	result := cairn(t, args...)
	if result.err != nil {
		t.Fatalf("cairn %s: %v\nstderr: %s", strings.Join(args, " "), result.err, result.stderr)
	}
	return result
}

func TestVersionPrintsThePackageVersion(t *testing.T) {
	result := mustCairn(t, "version")
	if result.stdout != version+"\n" || version != "dev" {
		t.Errorf("stdout %q, version %q", result.stdout, version)
	}
}

func TestRootHasEverySubcommand(t *testing.T) {
	root := newRootCommand(func(string) (string, bool) { return "", false })
	if root.Short != "Cairn: a durable event log that speaks the Kafka protocol" {
		t.Errorf("short help %q", root.Short)
	}
	for _, name := range []string{"serve", "topic", "acl", "quota", "produce", "consume", "group", "transactions", "stream", "user", "connector", "bench", "version"} {
		if command, _, err := root.Find([]string{name}); err != nil || command.Name() != name {
			t.Errorf("subcommand %s missing: %v", name, err)
		}
	}
}

func TestEnvironmentStandsInForFlagsAndTheCommandLineWins(t *testing.T) {
	_, brokers := startCluster(t)
	env := map[string]string{"CAIRN_BROKERS": brokers, "CAIRN_PARTITIONS": "3"}
	result := invocation{env: env, args: []string{"topic", "create", "from-env"}}.run(t)
	if result.err != nil {
		t.Fatalf("create with brokers from the environment: %v", result.err)
	}
	if !strings.Contains(result.stdout, "with 3 partitions") {
		t.Errorf("CAIRN_PARTITIONS ignored: %q", result.stdout)
	}

	// A dead broker in the environment must not matter when --brokers is given.
	env = map[string]string{"CAIRN_BROKERS": "127.0.0.1:1", "CAIRN_PARTITIONS": "3"}
	result = invocation{env: env, args: []string{"topic", "create", "from-flags", "--brokers", brokers, "--partitions", "2"}}.run(t)
	if result.err != nil {
		t.Fatalf("create with --brokers over the environment: %v", result.err)
	}
	if !strings.Contains(result.stdout, "with 2 partitions") {
		t.Errorf("--partitions lost to CAIRN_PARTITIONS: %q", result.stdout)
	}
}

func TestEnvironmentValueThatDoesNotParseIsAnError(t *testing.T) {
	result := invocation{env: map[string]string{"CAIRN_MAX": "lots"}, args: []string{"consume", "t"}}.run(t)
	if result.err == nil || !strings.Contains(result.err.Error(), "CAIRN_MAX") {
		t.Fatalf("err = %v, want one naming CAIRN_MAX", result.err)
	}
}
