package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairnlog/cairn/internal/testio"
)

// streamCommand is a cairn stream command of the real binary against
// server's event-store API, named through CAIRN_SERVER only.
func streamCommand(ctx context.Context, t *testing.T, server *cairnServer, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, cairnBinary, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "CAIRN_SERVER=http://" + server.httpAddr}
	return cmd
}

// runStreamCLI runs a cairn stream command to its end.
func runStreamCLI(t *testing.T, server *cairnServer, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliWaitMax)
	defer cancel()
	cmd := streamCommand(ctx, t, server, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	result := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		result.exitCode = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("cairn %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return result
}

// TestStreamCLIWithKafkaView: the cairn stream commands of the real binary
// append with expected revisions, read back and follow a live append, and
// the same events are ordinary records to kcat, with the CloudEvents
// attributes and the event metadata as headers.
func TestStreamCLIWithKafkaView(t *testing.T) {
	kcatPath := requireTool(t, "kcat")
	server := startCairn(t, "")
	if r := runStreamCLI(t, server, "stream", "append", "orders/order-1", "--type", "OrderPlaced", "--data", `{"sku":"tea"}`,
		"--expected-revision", "no-stream", "--metadata", "user=ann"); r.exitCode != 0 || r.stdout != "0\n" {
		t.Fatalf("append: %d %q %q", r.exitCode, r.stdout, r.stderr)
	}
	conflict := runStreamCLI(t, server, "stream", "append", "orders/order-1", "--type", "OrderPlaced", "--data", `{}`, "--expected-revision", "no-stream")
	wantConflict := "cairn: wrong expected revision for orders/order-1: expected no-stream, but its revision is 0\n"
	if conflict.exitCode != 1 || conflict.stderr != wantConflict || conflict.stdout != "" {
		t.Fatalf("conflict: exit %d, stdout %q, stderr %q; want exit 1 and %q", conflict.exitCode, conflict.stdout, conflict.stderr, wantConflict)
	}
	if r := runStreamCLI(t, server, "stream", "append", "orders/order-1", "--type", "OrderPaid", "--data", `{"amount":3}`, "--expected-revision", "0"); r.exitCode != 0 || r.stdout != "1\n" {
		t.Fatalf("second append: %d %q %q", r.exitCode, r.stdout, r.stderr)
	}

	// A topic subscription catches up with both events, gets the third
	// live over HTTP/2 and exits after --max.
	ctx, cancel := context.WithTimeout(context.Background(), cliWaitMax)
	defer cancel()
	sub := streamCommand(ctx, t, server, "stream", "subscribe", "orders", "--json", "--max", "3")
	var subOut, subErr testio.Buffer
	sub.Stdout, sub.Stderr = &subOut, &subErr
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	subDone := make(chan error, 1)
	go func() { subDone <- sub.Wait() }()
	deadline := time.Now().Add(cliWaitMax)
	for !strings.Contains(subErr.String(), "caught up with orders after 2 events") {
		select {
		case err := <-subDone:
			t.Fatalf("subscribe ended before catching up: %v\nstderr %q", err, subErr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = sub.Process.Signal(syscall.SIGKILL)
			t.Fatalf("subscribe not caught up after %s: %q", cliWaitMax, subErr.String())
		}
	}
	if r := runStreamCLI(t, server, "stream", "append", "orders/order-2", "--type", "OrderPlaced", "--data", `{"sku":"cake"}`); r.exitCode != 0 || r.stdout != "0\n" {
		t.Fatalf("live append: %d %q %q", r.exitCode, r.stdout, r.stderr)
	}
	if err := <-subDone; err != nil {
		t.Fatalf("subscribe: %v\nstderr %q", err, subErr.String())
	}
	if lines := strings.Split(strings.TrimSpace(subOut.String()), "\n"); len(lines) != 3 || !strings.Contains(lines[2], `"stream":"order-2","revision":0`) ||
		!strings.Contains(lines[2], `"data":{"sku":"cake"}`) || !strings.Contains(subErr.String(), "stopped after 3 events; continue with --from 0:") {
		t.Fatalf("subscribe printed %q, stderr %q", subOut.String(), subErr.String())
	}

	read := runStreamCLI(t, server, "stream", "read", "orders/order-1", "--json")
	if read.exitCode != 0 {
		t.Fatalf("read: %q", read.stderr)
	}
	var ids []string
	for i, line := range strings.Split(strings.TrimSpace(read.stdout), "\n") {
		var ev struct {
			Revision int               `json:"revision"`
			ID       string            `json:"id"`
			Type     string            `json:"type"`
			Data     json.RawMessage   `json:"data"`
			Metadata map[string]string `json:"metadata"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Revision != i || ev.ID == "" {
			t.Fatalf("line %d %q: %v", i, line, err)
		}
		if want := []string{`{"sku":"tea"}`, `{"amount":3}`}[min(i, 1)]; string(ev.Data) != want {
			t.Errorf("event %d data %s, want %s", i, ev.Data, want)
		}
		if i == 0 && ev.Metadata["user"] != "ann" {
			t.Errorf("event 0 metadata %v", ev.Metadata)
		}
		ids = append(ids, ev.ID)
	}
	if len(ids) != 2 {
		t.Fatalf("read %d events", len(ids))
	}

	records := kcat(t, kcatPath, server.kafkaAddr, "", "-C", "-t", "orders", "-e", "-q", "-f", "%k %h\n")
	lines := strings.Split(strings.TrimSpace(records), "\n")
	if len(lines) != 3 {
		t.Fatalf("kcat printed %q", records)
	}
	for i, line := range lines[:2] {
		key, headers, _ := strings.Cut(line, " ")
		if key != "order-1" {
			t.Fatalf("kcat line %q", line)
		}
		for _, want := range []string{"ce_id=" + ids[i], "ce_specversion=1.0", "ce_subject=order-1", "ce_source=/cairn/topics/orders",
			"ce_type=" + []string{"OrderPlaced", "OrderPaid"}[i], "content-type=application/json"} {
			if !strings.Contains(headers, want) {
				t.Errorf("record %d headers %q lack %s", i, headers, want)
			}
		}
	}
	if !strings.Contains(lines[0], "user=ann") || strings.Contains(lines[1], "user=") || !strings.HasPrefix(lines[2], "order-2 ") {
		t.Errorf("kcat view %q", records)
	}
}
