package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds of the process lifecycle. Startup is short on a fresh or cleanly
// stopped data dir; recovery after SIGKILL scans only segment tails.
const (
	healthzWaitMax  = 10 * time.Second
	stopWaitMax     = 30 * time.Second
	stderrBytesMax  = 4 << 20 // the tail kept for the test log
	healthzPollWait = 50 * time.Millisecond
)

// cairnBinary is the path of the binary TestMain built.
var cairnBinary string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	buildDir, err := os.MkdirTemp("", "cairn-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: make build dir:", err)
		return 1
	}
	defer os.RemoveAll(buildDir)
	cairnBinary = filepath.Join(buildDir, "cairn")
	if err := buildCairn(cairnBinary); err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	defer pg.Stop() // the PostgreSQL of the CDC tests, when one started
	return m.Run()
}

// buildCairn builds ./cmd/cairn from the module root, found from the go
// command itself so the tests run from any working directory.
func buildCairn(output string) error {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("find module root: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	// The lossyfs tag adds a filesystem that loses unsynced writes on
	// SIGKILL, off unless a process is started with CAIRN_TEST_LOSSYFS=1
	// (the nemesis tests); every other test runs the ordinary disk.
	build := exec.Command("go", "build", "-tags", "lossyfs", "-o", output, "./cmd/cairn")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build cmd/cairn in %s: %w\n%s", root, err, out)
	}
	return nil
}

// requireTool returns the path of an external program a test needs. Outside
// CI a missing tool skips the test; in CI (CI=true) it fails it, because a
// CI run that skips the compatibility tests proves nothing.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required in CI and was not found: %v", name, err)
	}
	t.Skipf("%s not found (%v); install it to run this test", name, err)
	return ""
}

// cairnServer is one `cairn serve` process, restartable on the same data dir
// and ports.
type cairnServer struct {
	t         *testing.T
	dataDir   string
	kafkaAddr string
	httpAddr  string
	extraArgs []string
	env       []string // added to the process's environment
	stderr    *tailBuffer

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	waited error         // cmd.Wait's result, read after exited closes
}

// startCairn starts `cairn serve` on free ports with dataDir (a fresh
// t.TempDir() when empty) and extra flags, and waits for /healthz. The
// process is killed when the test ends, and its stderr is logged if the test
// failed.
func startCairn(t *testing.T, dataDir string, extraArgs ...string) *cairnServer {
	t.Helper()
	s := newCairnServer(t, dataDir, extraArgs...)
	s.start()
	return s
}

// newCairnServer is startCairn without the start: a cluster's nodes are
// launched together, since each waits for a quorum of the others before
// it is healthy.
func newCairnServer(t *testing.T, dataDir string, extraArgs ...string) *cairnServer {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	s := &cairnServer{
		t:         t,
		dataDir:   dataDir,
		kafkaAddr: freeAddr(t),
		httpAddr:  freeAddr(t),
		extraArgs: extraArgs,
		stderr:    &tailBuffer{limit: stderrBytesMax},
	}
	t.Cleanup(func() {
		if s.running() {
			s.signal(syscall.SIGKILL)
			<-s.exited
		}
		if t.Failed() {
			t.Logf("cairn stderr (last %d bytes kept):\n%s", stderrBytesMax, s.stderr.String())
		}
	})
	return s
}

// freeAddr returns a 127.0.0.1 address with a port nothing listens on now.
// Another process could take it before cairn binds it; the start then fails
// loudly rather than testing the wrong server.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("close port probe: %v", err)
	}
	return addr
}

func (s *cairnServer) start() {
	s.t.Helper()
	s.launch()
	s.waitHealthy()
}

// launch starts the process without waiting for it to serve.
func (s *cairnServer) launch() {
	s.t.Helper()
	args := append([]string{"serve",
		"--data-dir", s.dataDir,
		"--kafka-addr", s.kafkaAddr,
		"--http-addr", s.httpAddr,
	}, s.extraArgs...)
	fmt.Fprintf(s.stderr, "--- %s starting: cairn %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := exec.Command(cairnBinary, args...)
	if len(s.env) > 0 {
		cmd.Env = append(os.Environ(), s.env...)
	}
	cmd.Stdout = s.stderr
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start cairn: %v", err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() {
		s.waited = cmd.Wait()
		close(s.exited)
	}()
}

// waitHealthy polls /healthz until it answers 200 "ok", the process exits,
// or healthzWaitMax passes.
func (s *cairnServer) waitHealthy() {
	s.t.Helper()
	if err := s.healthy(); err != nil {
		s.t.Fatal(err)
	}
}

// errExitedEarly: the process exited before it was healthy.
var errExitedEarly = errors.New("cairn exited before it was healthy")

// healthy is waitHealthy returning why the process did not become healthy.
func (s *cairnServer) healthy() error {
	deadline := time.Now().Add(healthzWaitMax)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("%w: %v\nstderr:\n%s", errExitedEarly, s.waited, s.stderr.String())
		default:
		}
		status, body, err := s.healthz()
		if err == nil && status == http.StatusOK && strings.TrimSpace(body) == "ok" {
			return nil
		}
		last = fmt.Sprintf("status %d body %q err %v", status, body, err)
		time.Sleep(healthzPollWait)
	}
	return fmt.Errorf("cairn not healthy after %s (last answer: %s)", healthzWaitMax, last)
}

// healthz asks /healthz once.
func (s *cairnServer) healthz() (status int, body string, err error) {
	return httpGet("http://" + s.httpAddr + "/healthz")
}

func httpGet(url string) (status int, body string, err error) {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, string(data), err
}

func (s *cairnServer) running() bool {
	if s.exited == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

func (s *cairnServer) signal(sig syscall.Signal) {
	if err := s.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.t.Fatalf("send %v to cairn: %v", sig, err)
	}
}

// Kill ends the process with SIGKILL, as a crash would, and waits for it.
func (s *cairnServer) Kill() {
	s.t.Helper()
	fmt.Fprintf(s.stderr, "--- %s SIGKILL\n", time.Now().Format(time.RFC3339Nano))
	s.signal(syscall.SIGKILL)
	<-s.exited
}

// Stop sends SIGTERM and requires a clean exit with code 0 within stopWaitMax.
func (s *cairnServer) Stop() {
	s.t.Helper()
	fmt.Fprintf(s.stderr, "--- %s SIGTERM\n", time.Now().Format(time.RFC3339Nano))
	s.signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(stopWaitMax):
		s.signal(syscall.SIGKILL)
		<-s.exited
		s.t.Fatalf("cairn did not exit within %s of SIGTERM", stopWaitMax)
	}
	if s.waited != nil {
		s.t.Fatalf("cairn exited uncleanly after SIGTERM: %v", s.waited)
	}
}

// Restart starts the process again on the same data dir and ports; the
// previous one must have been stopped or killed.
func (s *cairnServer) Restart() {
	s.t.Helper()
	if s.running() {
		s.t.Fatalf("restart: cairn is still running")
	}
	s.start()
}

// requireAlive fails t (the test or subtest calling it) if the process has
// exited.
func (s *cairnServer) requireAlive(t *testing.T) {
	t.Helper()
	if !s.running() {
		t.Fatalf("cairn exited: %v", s.waited)
	}
}

// tailBuffer keeps the last limit bytes written to it; safe for concurrent
// writes from the process's stdout and stderr copiers.
type tailBuffer struct {
	mu    sync.Mutex
	limit int
	buf   bytes.Buffer
	// line is the last line written, unfinished; counted the lines, over
	// the whole output, that hold one of countedLines.
	line    []byte
	counted map[string]int
}

// countedLines are what tailBuffer counts in every process's output, kept
// or not: lines a check needs over a run longer than the kept tail.
var countedLines = []string{damagedReplicaLine}

// damagedReplicaLine starts the line a node logs when it finds its replica
// of a partition damaged (cluster/damaged.go).
const damagedReplicaLine = "replica damaged; asking for a new copy from the group"

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.limit; over > 0 {
		b.buf.Next(over)
	}
	b.line = append(b.line, p...)
	for {
		end := bytes.IndexByte(b.line, '\n')
		if end < 0 {
			break
		}
		for _, c := range countedLines {
			if bytes.Contains(b.line[:end], []byte(c)) {
				if b.counted == nil {
					b.counted = map[string]int{}
				}
				b.counted[c]++
			}
		}
		b.line = b.line[end+1:]
	}
	if len(b.line) > 64<<10 { // no line is that long: a binary blob, not counted
		b.line = nil
	}
	return len(p), nil
}

// count returns how many lines written held line, one of countedLines.
func (b *tailBuffer) count(line string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.counted[line]
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runTool runs an external program with stdin, bounded by timeout, and
// returns its stdout; a non-zero exit fails the test with stderr shown.
func runTool(t *testing.T, timeout time.Duration, stdin string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v (context: %v)\nstdout:\n%s\nstderr:\n%s",
			name, strings.Join(args, " "), err, ctx.Err(), tail(stdout.String()), tail(stderr.String()))
	}
	if stderr.Len() > 0 {
		t.Logf("%s %s stderr:\n%s", filepath.Base(name), strings.Join(args, " "), tail(stderr.String()))
	}
	return stdout.String()
}

// tail keeps the end of a tool's output for the test log: a client retrying
// against a broken server can print thousands of identical lines.
func tail(text string) string {
	const kept = 4 << 10
	if len(text) <= kept {
		return text
	}
	return fmt.Sprintf("[... %d bytes cut ...]\n%s", len(text)-kept, text[len(text)-kept:])
}

// TestTailBufferCountsLines: a counted line is found whole across writes
// that split it, and after the kept tail has dropped it.
func TestTailBufferCountsLines(t *testing.T) {
	b := &tailBuffer{limit: 16}
	fmt.Fprintf(b, "level=ERROR msg=\"%s", damagedReplicaLine[:10])
	fmt.Fprintf(b, "%s\" topic=a\nother line\n", damagedReplicaLine[10:])
	fmt.Fprintf(b, "msg=\"%s\"\n", damagedReplicaLine)
	fmt.Fprintf(b, "%s without its end", damagedReplicaLine)
	if n := b.count(damagedReplicaLine); n != 2 {
		t.Fatalf("count = %d, want 2 (the unfinished line not yet)", n)
	}
	if len(b.String()) > 16 {
		t.Fatalf("kept %d bytes, limit 16", len(b.String()))
	}
}
