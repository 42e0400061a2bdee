package integration

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairnlog/cairn/internal/testio"
)

// Bounds of the interrupt tests: how long a client may take to stop once
// asked, and how long the bench gets to show it is producing.
const (
	clientStopWaitMax  = 5 * time.Second
	benchStartWaitMax  = 30 * time.Second
	outputPollInterval = 50 * time.Millisecond
)

// cliProcess is a cairn client command running in the background.
type cliProcess struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *testio.Buffer
	exited chan struct{}
	waited error
}

func startCairnCLI(t *testing.T, server *cairnServer, args ...string) *cliProcess {
	t.Helper()
	cmd := exec.Command(cairnBinary, append(args, "--brokers", server.kafkaAddr)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	process := &cliProcess{t: t, cmd: cmd, stderr: &testio.Buffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = process.stderr, process.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start cairn %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		process.waited = cmd.Wait()
		close(process.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-process.exited:
		default:
			_ = cmd.Process.Kill()
			<-process.exited
		}
	})
	return process
}

// waitOutput waits until the output contains want, failing the test after
// wait.
func (p *cliProcess) waitOutput(want string, wait time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if strings.Contains(p.stderr.String(), want) {
			return
		}
		select {
		case <-p.exited:
			p.t.Fatalf("cairn exited (%v) before printing %q:\n%s", p.waited, want, p.stderr.String())
		case <-time.After(outputPollInterval):
		}
	}
	p.t.Fatalf("cairn did not print %q within %s:\n%s", want, wait, p.stderr.String())
}

// waitExit waits up to wait for the process to end and returns its exit
// code.
func (p *cliProcess) waitExit(wait time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(wait):
		p.t.Fatalf("cairn still running %s after it was asked to stop:\n%s", wait, tail(p.stderr.String()))
	}
	var exitErr *exec.ExitError
	if errors.As(p.waited, &exitErr) {
		return exitErr.ExitCode()
	}
	if p.waited != nil {
		p.t.Fatalf("wait for cairn: %v", p.waited)
	}
	return 0
}

// startBenchUntilAcked starts a long bench produce and waits until it has
// had acknowledgements, so the broker dies in the middle of the run.
func startBenchUntilAcked(t *testing.T, server *cairnServer, timeout string) *cliProcess {
	t.Helper()
	bench := startCairnCLI(t, server, "bench", "produce", "--progress",
		"--records", "1000000000", "--duration", "10m", "--record-bytes", "100",
		"--metrics-url", "", "--timeout", timeout)
	// A progress line with a non-zero count: "produce: 12345 records".
	deadline := time.Now().Add(benchStartWaitMax)
	for !benchAcked(bench.stderr.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("bench acknowledged nothing within %s:\n%s", benchStartWaitMax, bench.stderr.String())
		}
		bench.waitOutput("records/s", benchStartWaitMax)
		time.Sleep(outputPollInterval)
	}
	return bench
}

func benchAcked(output string) bool {
	for line := range strings.Lines(output) {
		if strings.HasPrefix(line, "produce: ") && !strings.HasPrefix(line, "produce: 0 records") {
			return true
		}
	}
	return false
}

// TestBenchProduceStopsOnSignalAfterBrokerDeath proves that a bench whose
// broker was killed stops on SIGINT and on SIGTERM within a few seconds, with
// a message saying why, instead of printing "0 records/s" forever.
func TestBenchProduceStopsOnSignalAfterBrokerDeath(t *testing.T) {
	for _, signal := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(signal.String(), func(t *testing.T) {
			server := startCairn(t, "")
			bench := startBenchUntilAcked(t, server, "10m")
			server.Kill()
			if err := bench.cmd.Process.Signal(signal); err != nil {
				t.Fatalf("signal the bench: %v", err)
			}
			code := bench.waitExit(clientStopWaitMax)
			output := bench.stderr.String()
			if code == 0 {
				t.Fatalf("bench exited 0 with records unanswered:\n%s", tail(output))
			}
			if !strings.Contains(output, "interrupted") || !strings.Contains(output, "unknown") {
				t.Fatalf("bench output does not say it was interrupted with unknown outcomes:\n%s", tail(output))
			}
			t.Logf("bench output:\n%s", tail(output))
		})
	}
}

// TestBenchProduceStopsOnTimeoutAfterBrokerDeath proves that --timeout bounds
// a bench whose broker died: it exits with a message naming the timeout.
func TestBenchProduceStopsOnTimeoutAfterBrokerDeath(t *testing.T) {
	server := startCairn(t, "")
	bench := startBenchUntilAcked(t, server, "2s")
	server.Kill()
	code := bench.waitExit(2*time.Second + clientStopWaitMax)
	output := bench.stderr.String()
	if code == 0 {
		t.Fatalf("bench exited 0 with records unanswered:\n%s", tail(output))
	}
	if !strings.Contains(output, "2s") || !strings.Contains(output, "unknown") {
		t.Fatalf("bench output does not name the timeout and the unknown outcomes:\n%s", tail(output))
	}
	t.Logf("bench output:\n%s", tail(output))
}

// TestProduceStopsOnSignalAfterBrokerDeath proves that `cairn produce`
// reading an endless input stops on SIGINT after its broker was killed,
// within its --timeout, saying it was interrupted, instead of blocking on
// a full buffer forever.
func TestProduceStopsOnSignalAfterBrokerDeath(t *testing.T) {
	server := startCairn(t, "")
	cmd := exec.Command(cairnBinary, "produce", "endless", "--progress", "--timeout", "2s", "--brokers", server.kafkaAddr)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	produce := &cliProcess{t: t, cmd: cmd, stderr: &testio.Buffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = produce.stderr, produce.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		produce.waited = cmd.Wait()
		close(produce.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-produce.exited
	})
	// Lines until the process stops reading them; bounded by the test.
	go func() {
		line := []byte(strings.Repeat("x", 100) + "\n")
		for range 100_000_000 {
			if _, err := stdin.Write(line); err != nil {
				return
			}
		}
	}()
	produce.waitOutput("records/s", benchStartWaitMax)
	server.Kill()
	// Let the client fill its buffer against the dead broker.
	produce.waitOutput("0 records/s", benchStartWaitMax)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code := produce.waitExit(2*2*time.Second + clientStopWaitMax)
	output := produce.stderr.String()
	if code == 0 || !strings.Contains(output, "interrupted") {
		t.Fatalf("produce exited %d; want non-zero with a message saying it was interrupted:\n%s", code, tail(output))
	}
	t.Logf("produce output:\n%s", tail(output))
}
