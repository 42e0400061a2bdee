package projection

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"
)

// buildCrashProjector compiles testdata/crashprojector into a temporary directory.
func buildCrashProjector(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "crashprojector")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "./testdata/crashprojector")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build crashprojector: %v\n%s", err, out)
	}
	return bin
}

// projector is one run of the crash program.
type projector struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	ready  chan struct{} // closed when it has said it handles SIGTERM
}

// waitReady waits for the program to say it is ready.
func (p *projector) waitReady(t *testing.T) {
	t.Helper()
	select {
	case <-p.ready:
	case <-time.After(20 * time.Second):
		t.Fatalf("crashprojector did not get ready\n%s", p.stderr.String())
	}
}

func startProjector(t *testing.T, bin, serverURL string, d *testDB, topic string) *projector {
	t.Helper()
	p := &projector{ready: make(chan struct{})}
	p.cmd = exec.Command(bin, "-server", serverURL, "-driver", d.driver, "-dsn", d.dsn, "-topic", topic, "-delay-max", "3ms")
	p.cmd.Stderr = &p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		if line == "ready\n" {
			close(p.ready)
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	return p
}

// TestCrashRecovery: a projection process killed with SIGKILL at random
// moments, again and again, while events keep arriving, ends with every
// event applied exactly once: none lost, none doubled.
func TestCrashRecovery(t *testing.T) {
	bin := buildCrashProjector(t)
	forEachDB(t, func(t *testing.T, d *testDB) {
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(seed, seed>>1))
		ts := startServer(t, 3)
		c := ts.client(t)
		ctx := testContext(t, 80*time.Second)
		var want []string
		for i := range 20 {
			want = append(want, appendCounted(t, ctx, c, "payments", fmt.Sprintf("pay-%d", i), 10)...)
		}
		// The read model's table must exist before the first read below.
		createApplied(t, d)

		const kills = 6
		interrupted := 0
		for cycle := range kills {
			p := startProjector(t, bin, ts.url, d, "payments")
			// Events appended while it runs take the live path.
			want = append(want, appendCounted(t, ctx, c, "payments", fmt.Sprintf("live-%d", cycle), 30)...)
			time.Sleep(time.Duration(30+rng.IntN(250)) * time.Millisecond)
			if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = p.cmd.Wait()
			got := applied(t, d)
			for id, times := range got {
				if times != 1 {
					t.Fatalf("after kill %d: event %s applied %d times\n%s", cycle, id, times, p.stderr.String())
				}
			}
			if len(got) < len(want) {
				interrupted++
			}
			t.Logf("kill %d: %d of %d events applied", cycle, len(got), len(want))
		}
		if interrupted == 0 {
			t.Fatalf("every run finished its work before the kill: the test proved nothing about crashes")
		}

		p := startProjector(t, bin, ts.url, d, "payments")
		p.waitReady(t)
		waitFor(t, "every event projected after the crashes", 30*time.Second, func() bool { return len(applied(t, d)) >= len(want) })
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := p.cmd.Wait(); err != nil {
			t.Fatalf("projector after SIGTERM: %v\n%s", err, p.stderr.String())
		}
		checkExactlyOnce(t, d, want)

		r, err := New(c, d.db, "crash-counts", "payments", countEvent(mustDialect(t, d)), quiet())
		if err != nil {
			t.Fatal(err)
		}
		stored, err := r.Checkpoints(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if end := topicEnd(t, ctx, c, "payments"); !slices.Equal(stored, end) {
			t.Fatalf("checkpoints %v, topic ends at %v", stored, end)
		}
	})
}
