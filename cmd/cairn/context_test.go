package main

import (
	"context"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestClientCommandsStopAtTheirTimeoutWithAClearError proves that a command
// whose broker never answers ends at --timeout and says so, instead of a
// bare "context deadline exceeded".
func TestClientCommandsStopAtTheirTimeoutWithAClearError(t *testing.T) {
	// A listener that accepts and never answers: a broker that hangs.
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	go func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { conn.Close() })
		}
	}()
	for _, args := range [][]string{
		{"topic", "list"},
		{"topic", "describe", "orders"},
		{"group", "list"},
	} {
		started := time.Now()
		result := cairn(t, append(args, "--brokers", listener.Addr().String(), "--timeout", "300ms")...)
		// The client's own dial timeout is 10 s; the command must not wait
		// for it.
		if took := time.Since(started); took > 3*time.Second {
			t.Errorf("cairn %s took %s with --timeout 300ms", strings.Join(args, " "), took)
		}
		if result.err == nil || !strings.Contains(result.err.Error(), "timed out after 300ms") {
			t.Errorf("cairn %s against a silent broker: got %v, want a timed-out error naming the timeout",
				strings.Join(args, " "), result.err)
		}
	}
}

// TestInterruptContextSurvivesASecondSignal: a command that a signal
// stopped is not killed by a second copy of it once its context is
// cancelled (GNU timeout signals the command, then its process group).
// Without the fix the second SIGINT takes the default action and the test
// binary dies.
func TestInterruptContextSurvivesASecondSignal(t *testing.T) {
	ctx, cancel := interruptContext(context.Background())
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGINT did not end the context")
	}
	cancel()
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	// Were SIGINT back to its default action, the process would be gone
	// before this returns; a signal is delivered at once to its own sender.
	time.Sleep(100 * time.Millisecond)

	// A later command still hears the signal.
	again, cancelAgain := interruptContext(context.Background())
	defer cancelAgain()
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-again.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGINT did not end a later context")
	}
}
