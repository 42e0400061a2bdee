package integration

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairnlog/cairn/internal/testio"
)

// readmeRunWaitMax bounds the whole README run: a server start, an install
// (a build, cached), a short bench and a few dozen client commands.
const readmeRunWaitMax = 3 * time.Minute

// The README's own addresses; the test runs the commands against a server on
// free ports instead, so that it never meets another server on the machine.
const (
	readmeKafkaAddr = "127.0.0.1:9092"
	readmeHTTPAddr  = "127.0.0.1:8080"
)

// readmeUntilStopped marks, in a trailing comment, a README command that runs
// until Ctrl-C (a live subscription). The test gives it readmeLiveFor, then
// sends SIGINT and requires a clean exit.
const (
	readmeUntilStopped = "# runs until Ctrl-C"
	readmeLiveFor      = 3 * time.Second
)

// readmeQuickStart is the README's first block: the command that starts
// Cairn and the command that runs the whole test suite, in that order. The
// test checks them and does not run them (the second would run this test).
var readmeQuickStart = []string{"go run ./cmd/cairn serve", "go test -timeout 25m ./..."}

// TestReadmeCommandsRunAsWritten runs every ```sh block of README.md after
// the first, in order, in one bash with -euo pipefail, as a newcomer would
// type them on a fresh machine. The rules that make that possible, and the
// only liberties taken with the text:
//
//   - `go install ./cmd/cairn` runs with GOBIN set to a directory of the test
//     that comes first on PATH, so every `cairn` after it is the binary this
//     checkout builds, and $HOME/go/bin is left alone.
//   - The server listens on free ports, not 9092 and 8080: the literal
//     addresses in the commands are rewritten to the test's, and the cairn
//     client flags' defaults are pointed at them through CAIRN_BROKERS,
//     CAIRN_SERVER and CAIRN_METRICS_URL; CAIRN_DATA_DIR is a temporary
//     directory.
//   - A line that starts the server in the background (`cairn serve &`, or a
//     line whose comment says "in its own terminal") is followed by a wait
//     for /healthz, as a reader waits for its log line.
//   - A line whose comment says "runs until Ctrl-C" gets a few seconds,
//     then SIGINT, and must exit 0; one whose comment starts "# fails" must
//     exit non-zero.
//
// Everything the script started is stopped with SIGTERM when it ends.
func TestReadmeCommandsRunAsWritten(t *testing.T) {
	requireTool(t, "kcat")
	requireTool(t, "curl")
	root := moduleRoot(t)
	blocks := shellBlocks(t, filepath.Join(root, "README.md"))
	if len(blocks) < 2 {
		t.Fatalf("README.md has %d sh blocks, want the quick start and more", len(blocks))
	}
	checkQuickStart(t, blocks[0])
	runWalkthrough(t, root, blocks[1:], nil)
}

// TestShopWalkthroughRunsAsWritten runs the ```sh blocks of
// examples/shop/README.md in order under the rules of
// TestReadmeCommandsRunAsWritten, with two more: `apt-get install` is the
// machine's setup (done by .ci/run), so the test requires PostgreSQL to be
// installed instead of installing it; and the walk-through's PostgreSQL port
// 5433 is rewritten to a free one. The PostgreSQL it starts is stopped at the
// end through the walk-through's own $pg and $dir.
func TestShopWalkthroughRunsAsWritten(t *testing.T) {
	requireTool(t, "kcat")
	requireTool(t, "curl")
	requireTool(t, "psql")
	if found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb"); len(found) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("PostgreSQL (apt-get install postgresql) is required in CI and was not found")
		}
		t.Skip("PostgreSQL server binaries not found under /usr/lib/postgresql")
	}
	root := moduleRoot(t)
	blocks := shellBlocks(t, filepath.Join(root, "examples", "shop", "README.md"))
	if len(blocks) == 0 {
		t.Fatal("examples/shop/README.md has no sh blocks")
	}
	postgresPort := strings.TrimPrefix(freeAddr(t), "127.0.0.1:")
	output := runWalkthrough(t, root, blocks, []string{"-p 5433", "-p " + postgresPort, ":5433/", ":" + postgresPort + "/"})
	// The projection starts before the first order creates its topics:
	// that is nothing yet, not a warning. At the end the server and the
	// projection stop together, which may rightly warn.
	walkthrough, _, _ := strings.Cut(output, "+ readme_cleanup")
	for line := range strings.Lines(walkthrough) {
		if strings.Contains(line, "level=WARN") {
			t.Errorf("the walk-through logged a warning: %s", line)
		}
	}
}

// TestCDCOrdersWalkthroughRunsAsWritten runs the ```sh blocks of
// examples/cdc-orders/README.md in order under the rules of
// TestShopWalkthroughRunsAsWritten, and checks what they print: each
// order's stream holds its events once, in order (the first published by
// the initial snapshot, the others streamed), the refused command added
// none, and the orders table's change events are a snapshot read, an
// insert and an update.
func TestCDCOrdersWalkthroughRunsAsWritten(t *testing.T) {
	requireTool(t, "kcat")
	requireTool(t, "curl")
	requireTool(t, "psql")
	if found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb"); len(found) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("PostgreSQL (apt-get install postgresql) is required in CI and was not found")
		}
		t.Skip("PostgreSQL server binaries not found under /usr/lib/postgresql")
	}
	root := moduleRoot(t)
	blocks := shellBlocks(t, filepath.Join(root, "examples", "cdc-orders", "README.md"))
	if len(blocks) == 0 {
		t.Fatal("examples/cdc-orders/README.md has no sh blocks")
	}
	postgresPort := strings.TrimPrefix(freeAddr(t), "127.0.0.1:")
	output := runWalkthrough(t, root, blocks, []string{"-p 5433", "-p " + postgresPort, ":5433/", ":" + postgresPort + "/"})
	var order1, order2, changes []string
	for line := range strings.Lines(output) {
		switch {
		case strings.HasPrefix(line, "order/1\t"):
			order1 = append(order1, line)
		case strings.Contains(line, `"stream":"order/2"`):
			order2 = append(order2, line)
		case strings.HasPrefix(line, `{"id":`) && strings.Contains(line, `"op":`):
			changes = append(changes, line)
		}
	}
	// subscribe --max 2 and read each print order 1's two events.
	if len(order1) != 4 || !strings.Contains(order1[2], "\t0\tOrderPlaced\t") || !strings.Contains(order1[3], "\t1\tOrderShipped\t") {
		t.Errorf("order/1's events: %q, want OrderPlaced then OrderShipped, twice (subscribe, read)", order1)
	}
	if len(order2) != 1 || !strings.Contains(order2[0], `"type":"OrderPlaced"`) || !strings.Contains(order2[0], `"item":"coffee"`) {
		t.Errorf("order/2's events: %q, want one OrderPlaced of coffee", order2)
	}
	var ops []string
	for _, c := range changes {
		_, after, _ := strings.Cut(c, `"op":"`)
		ops = append(ops, after[:1])
	}
	// create --wait returned once the connector streamed, so order 2 and
	// the shipping are streamed changes.
	if got := strings.Join(ops, ""); got != "rcu" {
		t.Errorf("orders' change events have ops %q, want r (order 1 read by the snapshot), c (order 2), u (order 1 shipped): %q", ops, changes)
	}
}

// runWalkthrough runs blocks as one script from the module root against a
// server on free ports, and returns their output; replacements are extra
// old, new pairs.
func runWalkthrough(t *testing.T, root string, blocks [][]string, replacements []string) string {
	t.Helper()
	kafkaAddr, httpAddr := freeAddr(t), freeAddr(t)
	replacer := strings.NewReplacer(append([]string{readmeKafkaAddr, kafkaAddr, readmeHTTPAddr, httpAddr}, replacements...)...)
	script := readmeScript(blocks, httpAddr, replacer)
	bin := t.TempDir()
	env := []string{
		"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"),
		"GOBIN=" + bin,
		"CAIRN_DATA_DIR=" + t.TempDir(),
		"CAIRN_KAFKA_ADDR=" + kafkaAddr,
		"CAIRN_HTTP_ADDR=" + httpAddr,
		"CAIRN_BROKERS=" + kafkaAddr,
		"CAIRN_SERVER=http://" + httpAddr,
		"CAIRN_METRICS_URL=http://" + httpAddr + "/metrics",
	}
	ctx, cancel := context.WithTimeout(context.Background(), readmeRunWaitMax)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	// The script's background server and commands are its children: on
	// timeout the whole process group goes, or they would hold the
	// output pipe open and outlive the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = stopWaitMax
	output := &testio.Buffer{}
	cmd.Stdout, cmd.Stderr = output, output
	if err := cmd.Run(); err != nil {
		t.Fatalf("commands failed: %v (context: %v)\nscript:\n%s\noutput (the failing command is the last '+' line):\n%s",
			err, ctx.Err(), script, tail(output.String()))
	}
	t.Logf("output:\n%s", tail(output.String()))
	return output.String()
}

// moduleRoot is the directory of go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("find module root: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(gomod)))
}

// shellBlocks returns the lines of each ```sh block of a Markdown file.
func shellBlocks(t *testing.T, path string) [][]string {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var blocks [][]string
	var current []string
	inside := false
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		line := scanner.Text()
		switch {
		case !inside && strings.TrimSpace(line) == "```sh":
			inside, current = true, nil
		case inside && strings.TrimSpace(line) == "```":
			inside = false
			blocks = append(blocks, current)
		case inside:
			current = append(current, line)
		}
	}
	if err := scanner.Err(); err != nil {
		t.Fatal(err)
	}
	if inside {
		t.Fatalf("%s: an sh block is not closed", path)
	}
	return blocks
}

// checkQuickStart requires the first block to be the two quick-start
// commands.
func checkQuickStart(t *testing.T, block []string) {
	t.Helper()
	var commands []string
	for _, line := range block {
		command, _, _ := strings.Cut(line, "#")
		commands = append(commands, strings.TrimSpace(command))
	}
	if strings.Join(commands, "\n") != strings.Join(readmeQuickStart, "\n") {
		t.Errorf("README's first block is %q, want the start command and the test command %q", commands, readmeQuickStart)
	}
}

// Markers a walk-through puts in a command's trailing comment.
const (
	// markInOwnTerminal: the command keeps running while the next steps
	// run; the script starts it in the background.
	markInOwnTerminal = "# in its own terminal"
	// markFails: the command must exit non-zero.
	markFails = "# fails"
)

// readmeScript turns the blocks into one bash script under the rules of
// TestReadmeCommandsRunAsWritten and TestShopWalkthroughRunsAsWritten.
// replacer rewrites the documents' fixed addresses to the test's.
func readmeScript(blocks [][]string, httpAddr string, replacer *strings.Replacer) string {
	var script strings.Builder
	fmt.Fprintf(&script, `set -euo pipefail
readme_wait_healthy() {
	for _ in $(seq 600); do
		curl -fsS http://%s/healthz >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "cairn serve did not become healthy" >&2
	return 1
}
readme_cleanup() {
	if [ -n "${pg:-}" ] && [ -n "${dir:-}" ]; then
		${sudo:-} runuser -u postgres -- "$pg/pg_ctl" -D "$dir/data" stop -m fast >/dev/null 2>&1 || true
		${sudo:-} rm -rf "$dir"
	fi
	trap "" TERM
	kill -TERM 0 2>/dev/null || true
	wait || true
}
trap readme_cleanup EXIT
set -x
`, httpAddr)
	for _, block := range blocks {
		for _, line := range block {
			line = replacer.Replace(line)
			command, _, _ := strings.Cut(line, "#")
			command = strings.TrimSpace(command)
			serve := strings.Contains(command, "cairn serve")
			switch {
			case command == "":
			case strings.Contains(command, "apt-get install"):
				// The machine's setup, which .ci/run does; the test
				// checks the package instead of installing it.
				fmt.Fprintf(&script, ": skipped: %s\n", command)
			case strings.Contains(line, readmeUntilStopped):
				fmt.Fprintf(&script, "timeout --preserve-status -s INT %s %s\n", readmeLiveFor, command)
			case strings.Contains(line, markFails):
				fmt.Fprintf(&script, "if %s; then echo 'expected to fail: %s' >&2; exit 1; fi\n",
					command, strings.ReplaceAll(command, "'", ""))
			case strings.Contains(line, markInOwnTerminal):
				fmt.Fprintf(&script, "%s &\n", command)
				if serve {
					fmt.Fprintln(&script, "readme_wait_healthy")
				}
			case serve && strings.HasSuffix(command, "&"):
				fmt.Fprintf(&script, "%s\nreadme_wait_healthy\n", command)
			default:
				fmt.Fprintln(&script, line)
			}
		}
	}
	return script.String()
}
