package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// runStreamCLI runs a cairn stream command of the real binary against
// server's event-store API, named through CAIRN_SERVER.
func runStreamCLI(t *testing.T, server *cairnServer, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliWaitMax)
	defer cancel()
	cmd := exec.CommandContext(ctx, cairnBinary, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "CAIRN_SERVER=http://" + server.httpAddr}
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
// append with expected revisions and read back, and the same events are
// ordinary records to kcat, with the CloudEvents attributes as headers.
func TestStreamCLIWithKafkaView(t *testing.T) {
	kcatPath := requireTool(t, "kcat")
	server := startCairn(t, "")
	if r := runStreamCLI(t, server, "stream", "append", "orders/order-1", "--type", "OrderPlaced", "--data", `{"sku":"tea"}`, "--expected-revision", "no-stream"); r.exitCode != 0 || r.stdout != "0\n" {
		t.Fatalf("append: %d %q %q", r.exitCode, r.stdout, r.stderr)
	}
	conflict := runStreamCLI(t, server, "stream", "append", "orders/order-1", "--type", "OrderPlaced", "--data", `{}`, "--expected-revision", "no-stream")
	if conflict.exitCode == 0 || !strings.Contains(conflict.stderr, "its revision is 0") {
		t.Fatalf("conflict: exit %d, stderr %q", conflict.exitCode, conflict.stderr)
	}
	if r := runStreamCLI(t, server, "stream", "append", "orders/order-1", "--type", "OrderPaid", "--data", `{"amount":3}`, "--expected-revision", "0"); r.exitCode != 0 || r.stdout != "1\n" {
		t.Fatalf("second append: %d %q %q", r.exitCode, r.stdout, r.stderr)
	}
	read := runStreamCLI(t, server, "stream", "read", "orders/order-1", "--json")
	if read.exitCode != 0 {
		t.Fatalf("read: %q", read.stderr)
	}
	var ids []string
	for i, line := range strings.Split(strings.TrimSpace(read.stdout), "\n") {
		var ev struct {
			Revision int             `json:"revision"`
			ID       string          `json:"id"`
			Type     string          `json:"type"`
			Data     json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Revision != i || ev.ID == "" {
			t.Fatalf("line %d %q: %v", i, line, err)
		}
		ids = append(ids, ev.ID)
	}
	if len(ids) != 2 {
		t.Fatalf("read %d events", len(ids))
	}
	records := kcat(t, kcatPath, server.kafkaAddr, "", "-C", "-t", "orders", "-e", "-q", "-f", "%k|%h|%s\n")
	lines := strings.Split(strings.TrimSpace(records), "\n")
	if len(lines) != 2 {
		t.Fatalf("kcat printed %q", records)
	}
	for i, line := range lines {
		parts := strings.SplitN(line, "|", 3)
		if len(parts) != 3 || parts[0] != "order-1" {
			t.Fatalf("kcat line %q", line)
		}
		for _, want := range []string{"ce_id=" + ids[i], "ce_specversion=1.0", "ce_subject=order-1", "ce_source=/cairn/topics/orders", "content-type=application/json"} {
			if !strings.Contains(parts[1], want) {
				t.Errorf("record %d headers %q lack %s", i, parts[1], want)
			}
		}
	}
	if !strings.Contains(lines[0], "ce_type=OrderPlaced") || !strings.HasSuffix(lines[1], `{"amount":3}`) {
		t.Errorf("kcat view %q", records)
	}
}
