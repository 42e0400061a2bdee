package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/internal/testio"
	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/storage/vfs"
)

// streamWaitMax bounds each wait in these tests; every step takes
// milliseconds.
const streamWaitMax = 20 * time.Second

// startEventStore runs a server in process and returns its API URL.
func startEventStore(t *testing.T) string {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	srv, err := server.Start(cfg, vfs.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + srv.HTTPAddr()
}

// streamCLI returns a runner of cairn commands against the server at url.
func streamCLI(t *testing.T, url string) func(args ...string) commandResult {
	return func(args ...string) commandResult {
		t.Helper()
		return cairn(t, append(args, "--server", url)...)
	}
}

// jsonLines decodes --json output, one object per line.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var events []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		events = append(events, ev)
	}
	return events
}

// revisions lists the revision field of --json lines.
func revisions(t *testing.T, out string) []int {
	t.Helper()
	var revs []int
	for _, ev := range jsonLines(t, out) {
		revs = append(revs, int(ev["revision"].(float64)))
	}
	return revs
}

func TestStreamAppendAndRead(t *testing.T) {
	url := startEventStore(t)
	s := streamCLI(t, url)

	// The stream name keeps its slash: the name splits at the first one.
	first := s("stream", "append", "orders/eu/order-1", "--type", "OrderPlaced", "--data", `{"sku":"tea","qty":2}`,
		"--expected-revision", "no-stream", "--metadata", "user=ann", "--metadata", "trace=a=b")
	if first.err != nil || first.stdout != "0\n" {
		t.Fatalf("first append: %q %v %s", first.stdout, first.err, first.stderr)
	}
	file := filepath.Join(t.TempDir(), "paid.json")
	if err := os.WriteFile(file, []byte("{\n  \"amount\": 12\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := "7d444840-9dc0-11d1-b245-5ffdce74fad2"
	if r := s("stream", "append", "orders/eu/order-1", "--type", "OrderPaid", "--data", "@"+file, "--id", id, "--expected-revision", "0"); r.err != nil || r.stdout != "1\n" {
		t.Fatalf("append from a file: %q %v", r.stdout, r.err)
	}
	// The same id again is a retry: the original revision, nothing written.
	if r := s("stream", "append", "orders/eu/order-1", "--type", "OrderPaid", "--data", "@"+file, "--id", id, "--expected-revision", "0"); r.err != nil || r.stdout != "1\n" || !strings.Contains(r.stderr, "already appended") {
		t.Fatalf("retry: %q %q %v", r.stdout, r.stderr, r.err)
	}
	conflict := s("stream", "append", "orders/eu/order-1", "--type", "OrderShipped", "--data", "{}", "--expected-revision", "0")
	if want := "wrong expected revision for orders/eu/order-1: expected 0, but its revision is 1"; conflict.err == nil || conflict.err.Error() != want || conflict.stdout != "" {
		t.Fatalf("conflict: %v, stdout %q; want %q", conflict.err, conflict.stdout, want)
	}
	if r := s("stream", "append", "orders/fresh", "--type", "X", "--data", "{}", "--expected-revision", "exists"); r.err == nil ||
		r.err.Error() != "wrong expected revision for orders/fresh: expected exists, but the stream has no events" {
		t.Fatalf("exists on a new stream: %v", r.err)
	}
	if r := s("stream", "append", "orders/eu/order-1", "--type", "Checked", "--data", "{}", "--expected-revision", "exists"); r.err != nil || r.stdout != "2\n" {
		t.Fatalf("exists on a stream with events: %q %v", r.stdout, r.err)
	}
	// JSON-looking data labelled as text stays text.
	if r := s("stream", "append", "orders/eu/order-1", "--type", "Note", "--data", `{"not":"parsed"}`, "--content-type", "text/plain", "--expected-revision", "any"); r.err != nil || r.stdout != "3\n" {
		t.Fatalf("append with a content type: %q %v", r.stdout, r.err)
	}
	stdin := invocation{args: []string{"stream", "append", "orders/eu/order-1", "--type", "Note", "--data", "-", "--server", url},
		stdin: strings.NewReader("plain\ttext\non two lines")}.run(t)
	if stdin.err != nil || stdin.stdout != "4\n" {
		t.Fatalf("append from stdin: %q %v", stdin.stdout, stdin.err)
	}
	binary := invocation{args: []string{"stream", "append", "orders/eu/order-1", "--type", "Blob", "--data", "-", "--server", url},
		stdin: bytes.NewReader([]byte{0xff, 0x00, 'x'})}.run(t)
	if binary.err != nil || binary.stdout != "5\n" {
		t.Fatalf("append bytes: %q %v", binary.stdout, binary.err)
	}

	read := s("stream", "read", "orders/eu/order-1", "--json")
	if read.err != nil {
		t.Fatal(read.err)
	}
	events := jsonLines(t, read.stdout)
	if len(events) != 6 || strings.Count(read.stdout, "\n") != 6 {
		t.Fatalf("read printed %q", read.stdout)
	}
	for i, ev := range events {
		for _, field := range []string{"revision", "id", "type", "data", "time", "partition", "offset", "topic", "stream"} {
			if _, ok := ev[field]; !ok {
				t.Errorf("event %d lacks %s: %v", i, field, ev)
			}
		}
		if ev["revision"] != float64(i) || ev["offset"].(float64) < float64(i) || ev["topic"] != "orders" || ev["stream"] != "eu/order-1" {
			t.Errorf("event %d: %v", i, ev)
		}
		if when, err := time.Parse(time.RFC3339Nano, ev["time"].(string)); err != nil || time.Since(when) > time.Minute {
			t.Errorf("event %d time %v: %v", i, ev["time"], err)
		}
	}
	if events[0]["type"] != "OrderPlaced" || events[0]["data"].(map[string]any)["sku"] != "tea" || events[0]["content_type"] != "application/json" ||
		events[0]["metadata"].(map[string]any)["user"] != "ann" || events[0]["metadata"].(map[string]any)["trace"] != "a=b" || len(events[0]["id"].(string)) != 36 {
		t.Errorf("first event %v", events[0])
	}
	if events[1]["id"] != id || events[1]["data"].(map[string]any)["amount"] != 12.0 {
		t.Errorf("second event %v", events[1])
	}
	if events[3]["data"] != `{"not":"parsed"}` || events[3]["content_type"] != "text/plain" {
		t.Errorf("text event %v", events[3])
	}
	if events[4]["data"] != "plain\ttext\non two lines" || events[4]["content_type"] != "application/octet-stream" {
		t.Errorf("stdin event %v", events[4])
	}
	if exact, err := base64.StdEncoding.DecodeString(events[5]["data_base64"].(string)); err != nil || !bytes.Equal(exact, []byte{0xff, 0x00, 'x'}) {
		t.Errorf("bytes event %v: %v", events[5], err)
	}
	if _, ok := events[0]["data_base64"]; ok {
		t.Errorf("data_base64 on UTF-8 data: %v", events[0])
	}

	// Text: one line per event, tab-separated, the data's own tabs and
	// newlines escaped.
	back := s("stream", "read", "orders/eu/order-1", "--backwards", "--from", "4", "--max", "1")
	fields := strings.Split(strings.TrimSuffix(back.stdout, "\n"), "\t")
	if back.err != nil || strings.Count(back.stdout, "\n") != 1 || len(fields) != 6 || fields[0] != "eu/order-1" || fields[1] != "4" ||
		fields[2] != "Note" || fields[3] != events[4]["id"] || fields[4] != events[4]["time"] || fields[5] != `plain\ttext\non two lines` {
		t.Fatalf("backwards from 4: %q %v", back.stdout, back.err)
	}
	if r := s("stream", "read", "orders/eu/order-1", "--backwards", "--json"); !equalInts(revisions(t, r.stdout), []int{5, 4, 3, 2, 1, 0}) {
		t.Fatalf("backwards: %q %v", r.stdout, r.err)
	}
	if r := s("stream", "read", "orders/eu/order-1", "--from", "1", "--max", "2", "--json"); !equalInts(revisions(t, r.stdout), []int{1, 2}) {
		t.Fatalf("--from 1 --max 2: %q %v", r.stdout, r.err)
	}
	if r := s("stream", "read", "orders/nothing"); r.err == nil || !strings.Contains(r.err.Error(), "stream not found") {
		t.Fatalf("missing stream: %v", r.err)
	}
	// CAIRN_SERVER stands in for --server.
	env := invocation{args: []string{"stream", "read", "orders/eu/order-1", "--max", "1"}, env: map[string]string{"CAIRN_SERVER": url}}.run(t)
	if env.err != nil || strings.Count(env.stdout, "\n") != 1 {
		t.Fatalf("CAIRN_SERVER: %q %v", env.stdout, env.err)
	}
}

func equalInts(a, b []int) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// TestStreamReadCrossesPages reads a stream longer than the server's page.
func TestStreamReadCrossesPages(t *testing.T) {
	url := startEventStore(t)
	c, err := client.New(url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const total = readPageEventsMax + 50
	ctx, cancel := context.WithTimeout(context.Background(), streamWaitMax)
	defer cancel()
	for start := 0; start < total; start += 350 {
		batch := make([]client.EventData, min(350, total-start))
		for i := range batch {
			batch[i] = client.EventData{Type: "Tick", Data: fmt.Appendf(nil, `{"n":%d}`, start+i)}
		}
		if _, err := c.Append(ctx, "ticks", "clock", client.Any, batch...); err != nil {
			t.Fatal(err)
		}
	}
	s := streamCLI(t, url)
	all := s("stream", "read", "ticks/clock")
	if all.err != nil || strings.Count(all.stdout, "\n") != total || !strings.HasPrefix(all.stdout, "clock\t0\tTick\t") {
		t.Fatalf("read all: %d lines, %v", strings.Count(all.stdout, "\n"), all.err)
	}
	lastLine := all.stdout[strings.LastIndex(strings.TrimSuffix(all.stdout, "\n"), "\n")+1:]
	if !strings.HasPrefix(lastLine, fmt.Sprintf("clock\t%d\t", total-1)) || !strings.HasSuffix(lastLine, fmt.Sprintf("{\"n\":%d}\n", total-1)) {
		t.Fatalf("last line %q", lastLine)
	}
	capped := s("stream", "read", "ticks/clock", "--max", fmt.Sprint(readPageEventsMax+1), "--json")
	revs := revisions(t, capped.stdout)
	if capped.err != nil || len(revs) != readPageEventsMax+1 || revs[len(revs)-1] != readPageEventsMax {
		t.Fatalf("--max %d: %d events, %v", readPageEventsMax+1, len(revs), capped.err)
	}
	back := s("stream", "read", "ticks/clock", "--backwards", "--max", "60", "--json")
	if revs := revisions(t, back.stdout); back.err != nil || len(revs) != 60 || revs[0] != total-1 || revs[59] != total-60 {
		t.Fatalf("backwards --max 60: %v %v", revs, back.err)
	}
}

// TestStreamArgumentsAreCheckedBeforeAnyCall points at a port nothing
// listens on: each failure must come from the arguments, not the network.
func TestStreamArgumentsAreCheckedBeforeAnyCall(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"append", "t/s", "--data", "{}"}, `required flag(s) "type" not set`},
		{[]string{"append", "no-slash", "--type", "E"}, `"no-slash": want TOPIC/STREAM`},
		{[]string{"append", "t/", "--type", "E"}, `"t/": want TOPIC/STREAM`},
		{[]string{"append", "/s", "--type", "E"}, `"/s": want TOPIC/STREAM`},
		{[]string{"append", "t/s", "--type", "E", "--expected-revision", "-1"}, `--expected-revision "-1": want any, no-stream, exists or a revision number`},
		{[]string{"append", "t/s", "--type", "E", "--expected-revision", "latest"}, `--expected-revision "latest"`},
		{[]string{"append", "t/s", "--type", "E", "--metadata", "novalue"}, `--metadata "novalue": want NAME=VALUE`},
		{[]string{"append", "t/s", "--type", "E", "--metadata", "=v"}, `--metadata "=v": want NAME=VALUE`},
		{[]string{"append", "t/s", "--type", "E", "--metadata", "a=1", "--metadata", "a=2"}, `a given twice`},
		{[]string{"append", "t/s", "--type", "E", "--data", "@/nonexistent/file"}, `--data: open /nonexistent/file`},
		{[]string{"append", "t/s", "--type", "E", "--timeout", "0s"}, `--timeout 0s: must be positive`},
		{[]string{"read", "t"}, `"t": want TOPIC/STREAM`},
		{[]string{"read", "t/s", "--max", "-1"}, `--max -1`},
		{[]string{"read", "t/s", "--from", "x"}, `invalid argument "x" for "--from"`},
		{[]string{"subscribe", "t/"}, `"t/": want TOPIC or TOPIC/STREAM`},
		{[]string{"subscribe", "/s"}, `"/s": want TOPIC or TOPIC/STREAM`},
		{[]string{"subscribe", "t/s", "--from", "0:1"}, `--from "0:1": want start, end or a revision`},
		{[]string{"subscribe", "t", "--from", "7"}, `--from "7": want start, end, a revision (for a stream) or PARTITION:OFFSET`},
		{[]string{"subscribe", "t", "--from", "0:1,0:2"}, `partition 0 given twice`},
		{[]string{"subscribe", "t", "--from", "0:-1"}, `--from "0:-1"`},
		{[]string{"subscribe", "t", "--max", "-2"}, `--max -2`},
		{[]string{"metadata", "t/s", "--max-age", "-1s"}, `--max-age -1s`},
		{[]string{"metadata", "t"}, `"t": want TOPIC/STREAM`},
		{[]string{"delete", "t/s", "--expected-revision", "soon"}, `--expected-revision "soon"`},
		{[]string{"delete", "t/s", "extra"}, `accepts 1 arg(s), received 2`},
	} {
		r := cairn(t, append(append([]string{"stream"}, c.args...), "--server", "http://127.0.0.1:1")...)
		if r.err == nil || !strings.Contains(r.err.Error(), c.want) {
			t.Errorf("cairn stream %s: %v, want an error containing %q", strings.Join(c.args, " "), r.err, c.want)
		}
	}
	if r := cairn(t, "stream", "read", "t/s", "--server", "127.0.0.1:8080"); r.err == nil || !strings.Contains(r.err.Error(), `--server "127.0.0.1:8080"`) {
		t.Errorf("server without a scheme: %v", r.err)
	}
}

func TestStreamMetadataAndDelete(t *testing.T) {
	url := startEventStore(t)
	s := streamCLI(t, url)
	for range 5 {
		if r := s("stream", "append", "t/s", "--type", "E", "--data", "{}"); r.err != nil {
			t.Fatal(r.err)
		}
	}
	shown := s("stream", "metadata", "t/s")
	want := "stream:           t/s\nstate:            live\nlast revision:    4\nmax count:        none\nmax age:          none\ntruncate before:  none\n"
	if shown.err != nil || shown.stdout != want {
		t.Fatalf("metadata: %q %v, want %q", shown.stdout, shown.err, want)
	}
	set := s("stream", "metadata", "t/s", "--max-count", "3")
	if set.err != nil || !strings.Contains(set.stdout, "max count:        3\n") {
		t.Fatalf("set max count: %q %v", set.stdout, set.err)
	}
	// Read-modify-write: each flag changes its bound and keeps the others.
	set = s("stream", "metadata", "t/s", "--max-age", "1h")
	if set.err != nil || !strings.Contains(set.stdout, "max count:        3\n") || !strings.Contains(set.stdout, "max age:          1h0m0s\n") {
		t.Fatalf("set max age: %q %v", set.stdout, set.err)
	}
	set = s("stream", "metadata", "t/s", "--truncate-before", "3")
	if set.err != nil || !strings.Contains(set.stdout, "max count:        3\n") || !strings.Contains(set.stdout, "max age:          1h0m0s\n") ||
		!strings.Contains(set.stdout, "truncate before:  3\n") {
		t.Fatalf("set truncate before: %q %v", set.stdout, set.err)
	}
	// Max count 3 keeps 2..4; truncate-before 3 then hides 2.
	if r := s("stream", "read", "t/s", "--json"); !equalInts(revisions(t, r.stdout), []int{3, 4}) {
		t.Fatalf("read with max count 3, truncate before 3: %q %v", r.stdout, r.err)
	}
	set = s("stream", "metadata", "t/s", "--max-count", "0", "--truncate-before", "1")
	if set.err != nil || !strings.Contains(set.stdout, "max count:        none\n") || !strings.Contains(set.stdout, "max age:          1h0m0s\n") ||
		!strings.Contains(set.stdout, "truncate before:  1\n") {
		t.Fatalf("remove max count: %q %v", set.stdout, set.err)
	}
	if r := s("stream", "read", "t/s", "--json"); !equalInts(revisions(t, r.stdout), []int{1, 2, 3, 4}) {
		t.Fatalf("read after removing max count: %q %v", r.stdout, r.err)
	}
	// Bounds may come before the first event, even before the topic.
	if r := s("stream", "metadata", "new-topic/later", "--max-count", "9"); r.err != nil || !strings.Contains(r.stdout, "state:            no events\n") ||
		!strings.Contains(r.stdout, "max count:        9\n") {
		t.Fatalf("metadata of a stream of a missing topic: %q %v", r.stdout, r.err)
	}
	if r := s("stream", "metadata", "t/never"); r.err != nil || !strings.Contains(r.stdout, "last revision:    none\n") {
		t.Fatalf("metadata of a stream with no events: %q %v", r.stdout, r.err)
	}
	if r := s("stream", "metadata", "missing/s"); r.err == nil || !strings.Contains(r.err.Error(), "topic not found") {
		t.Fatalf("metadata of a missing topic: %q %v", r.stdout, r.err)
	}

	if r := s("stream", "delete", "t/s", "--expected-revision", "3"); r.err == nil || r.err.Error() != "wrong expected revision for t/s: expected 3, but its revision is 4" {
		t.Fatalf("delete with a stale revision: %v", r.err)
	}
	if r := s("stream", "delete", "t/s", "--expected-revision", "4"); r.err != nil || r.stdout != "deleted t/s\n" {
		t.Fatalf("soft delete: %q %v", r.stdout, r.err)
	}
	if r := s("stream", "metadata", "t/s"); r.err != nil || !strings.Contains(r.stdout, "state:            deleted (may be written again)\n") {
		t.Fatalf("metadata after soft delete: %q %v", r.stdout, r.err)
	}
	if r := s("stream", "append", "t/s", "--type", "E", "--data", "{}", "--expected-revision", "no-stream"); r.err != nil || r.stdout != "5\n" {
		t.Fatalf("append after soft delete: %q %v", r.stdout, r.err)
	}
	if r := s("stream", "read", "t/s", "--json"); !equalInts(revisions(t, r.stdout), []int{5}) {
		t.Fatalf("read after soft delete and append: %q %v", r.stdout, r.err)
	}
	if r := s("stream", "delete", "t/s", "--hard"); r.err != nil || r.stdout != "deleted for good t/s\n" {
		t.Fatalf("hard delete: %q %v", r.stdout, r.err)
	}
	if r := s("stream", "metadata", "t/s"); r.err != nil || !strings.Contains(r.stdout, "state:            deleted for good\n") {
		t.Fatalf("metadata after hard delete: %q %v", r.stdout, r.err)
	}
	for _, expected := range []string{"any", "no-stream"} {
		if r := s("stream", "append", "t/s", "--type", "E", "--data", "{}", "--expected-revision", expected); r.err == nil || !strings.Contains(r.err.Error(), "deleted for good") || r.stdout != "" {
			t.Fatalf("append %s after hard delete: %q %v", expected, r.stdout, r.err)
		}
	}
	if r := s("stream", "read", "t/s"); r.err == nil || !strings.Contains(r.err.Error(), "deleted for good") {
		t.Fatalf("read after hard delete: %v", r.err)
	}
}

// liveCommand is a command running in process, watched while it runs.
type liveCommand struct {
	args   []string
	stdout testio.Buffer
	stderr testio.Buffer
	done   chan error
}

// startLive runs cairn args against url in the background.
func startLive(t *testing.T, url string, args ...string) *liveCommand {
	t.Helper()
	l := &liveCommand{args: args, done: make(chan error, 1)}
	root := newRootCommand(func(string) (string, bool) { return "", false })
	root.SetArgs(append(args, "--server", url))
	root.SetOut(&l.stdout)
	root.SetErr(&l.stderr)
	root.SetIn(strings.NewReader(""))
	ctx, cancel := context.WithTimeout(context.Background(), 2*streamWaitMax)
	t.Cleanup(cancel)
	go func() { l.done <- root.ExecuteContext(ctx) }()
	return l
}

// waitStderr waits until stderr holds want; the command must not end first.
func (l *liveCommand) waitStderr(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(streamWaitMax)
	for !strings.Contains(l.stderr.String(), want) {
		select {
		case err := <-l.done:
			t.Fatalf("%v ended before %q on stderr: %v\nstdout %q\nstderr %q", l.args, want, err, l.stdout.String(), l.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v: no %q on stderr after %s: %q", l.args, want, streamWaitMax, l.stderr.String())
		}
	}
}

// wait waits for the command to end and returns what it printed.
func (l *liveCommand) wait(t *testing.T) commandResult {
	t.Helper()
	select {
	case err := <-l.done:
		return commandResult{stdout: l.stdout.String(), stderr: l.stderr.String(), err: err}
	case <-time.After(streamWaitMax):
		t.Fatalf("%v still running after %s\nstdout %q\nstderr %q", l.args, streamWaitMax, l.stdout.String(), l.stderr.String())
		return commandResult{}
	}
}

func TestStreamSubscribe(t *testing.T) {
	url := startEventStore(t)
	s := streamCLI(t, url)
	for _, typ := range []string{"OrderPlaced", "StockAdded", "OrderPaid"} {
		if r := s("stream", "append", "shop/a", "--type", typ, "--data", "{}"); r.err != nil {
			t.Fatal(r.err)
		}
	}
	if r := s("stream", "append", "shop/vip/b", "--type", "OrderPlaced", "--data", `{"vip":true}`); r.err != nil {
		t.Fatal(r.err)
	}
	// Positions for --from come from read --json: the record of a/1.
	a1 := jsonLines(t, s("stream", "read", "shop/a", "--from", "1", "--max", "1", "--json").stdout)[0]
	fromA1 := fmt.Sprintf("%.0f:%.0f", a1["partition"], a1["offset"])

	// The live appends, after every subscription has caught up: vip/b
	// OrderPaid, a OrderShipped, c OrderCancelled. total is what each
	// subscription prints in all, caught-up and live; --max is set to it,
	// so the command exits by itself.
	subs := []struct {
		name          string
		args          []string
		before, total int
		want, absent  []string
		resume        string // in the note on stopping; "" for none
	}{
		{"stream from a revision", []string{"shop/a", "--from", "1", "--json"}, 2, 3,
			[]string{`"type":"StockAdded"`, `"type":"OrderPaid"`, `"type":"OrderShipped"`}, []string{"OrderPlaced"}, "--from 4"},
		{"stream from the start", []string{"shop/a"}, 3, 4,
			[]string{"a\t0\tOrderPlaced", "a\t3\tOrderShipped"}, []string{"vip"}, "--from 4"},
		{"stream from the end", []string{"shop/a", "--from", "end"}, 0, 1,
			[]string{"a\t3\tOrderShipped"}, []string{"StockAdded"}, "--from 4"},
		{"stream not written yet", []string{"shop/c"}, 0, 1,
			[]string{"c\t0\tOrderCancelled"}, nil, "--from 1"},
		{"topic by type prefix", []string{"shop", "--type-prefix", "Order"}, 3, 6,
			[]string{"a\t0\tOrderPlaced", "vip/b\t1\tOrderPaid", "c\t0\tOrderCancelled"}, []string{"Stock"}, "--from 0:"},
		{"topic by type regex", []string{"shop", "--type-regex", "^(Stock|Order)(Added|Shipped)$"}, 1, 2,
			[]string{"a\t1\tStockAdded", "a\t3\tOrderShipped"}, []string{"OrderPlaced", "OrderPaid"}, "--from 0:"},
		{"topic by stream prefix", []string{"shop", "--stream-prefix", "vip/", "--json"}, 1, 2,
			[]string{`"stream":"vip/b","revision":0`, `"stream":"vip/b","revision":1`}, []string{`"stream":"a"`}, "--from 0:"},
		{"topic from positions", []string{"shop", "--from", fromA1}, 3, 6,
			[]string{"a\t1\tStockAdded", "vip/b\t0\tOrderPlaced", "c\t0\tOrderCancelled"}, []string{"a\t0\t"}, "--from 0:"},
		{"topic from the end", []string{"shop", "--from", "end", "--type-prefix", "Order"}, 0, 3,
			[]string{"vip/b\t1\tOrderPaid", "c\t0\tOrderCancelled"}, []string{"OrderPlaced"}, ""},
	}
	running := make([]*liveCommand, len(subs))
	for i, sub := range subs {
		args := append([]string{"stream", "subscribe"}, sub.args...)
		running[i] = startLive(t, url, append(args, "--max", fmt.Sprint(sub.total))...)
	}
	for _, l := range running {
		l.waitStderr(t, "caught up with ")
	}
	for _, ev := range []struct{ stream, typ string }{{"vip/b", "OrderPaid"}, {"a", "OrderShipped"}, {"c", "OrderCancelled"}} {
		if r := s("stream", "append", "shop/"+ev.stream, "--type", ev.typ, "--data", "{}"); r.err != nil {
			t.Fatal(r.err)
		}
	}
	for i, sub := range subs {
		r := running[i].wait(t)
		if r.err != nil {
			t.Errorf("%s: %v\nstderr %q", sub.name, r.err, r.stderr)
			continue
		}
		if n := strings.Count(r.stdout, "\n"); n != sub.total {
			t.Errorf("%s: %d events, want %d: %q", sub.name, n, sub.total, r.stdout)
		}
		caughtUp := fmt.Sprintf("caught up with %s after %s; waiting for new ones\n", sub.args[0], eventCount(int64(sub.before)))
		stopped := "stopped after " + eventCount(int64(sub.total))
		if sub.resume != "" {
			stopped += "; continue with " + sub.resume
		} else {
			stopped += "\n"
		}
		if !strings.HasPrefix(r.stderr, caughtUp) || !strings.Contains(r.stderr, stopped) {
			t.Errorf("%s: stderr %q, want %q then %q", sub.name, r.stderr, caughtUp, stopped)
		}
		for _, want := range sub.want {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("%s: no %q in %q", sub.name, want, r.stdout)
			}
		}
		for _, absent := range sub.absent {
			if strings.Contains(r.stdout, absent) {
				t.Errorf("%s: %q in %q", sub.name, absent, r.stdout)
			}
		}
	}
	if r := s("stream", "delete", "shop/a", "--hard"); r.err != nil {
		t.Fatal(r.err)
	}
	if r := s("stream", "subscribe", "shop/a", "--max", "1"); r.err == nil || !strings.Contains(r.err.Error(), "deleted for good") {
		t.Errorf("subscribe to a hard-deleted stream: %v", r.err)
	}
}

func TestEventCountIsSingularForOne(t *testing.T) {
	for n, want := range map[int64]string{0: "0 events", 1: "1 event", 2: "2 events", 1001: "1001 events"} {
		if got := eventCount(n); got != want {
			t.Errorf("eventCount(%d) = %q, want %q", n, got, want)
		}
	}
}

// mainCommand runs the real entry point (this test binary as main) with
// CAIRN_SERVER set.
func mainCommand(url string, args ...string) *exec.Cmd {
	command := exec.Command(os.Args[0], args...)
	command.Env = []string{runMainEnv + "=1", "CAIRN_SERVER=" + url}
	return command
}

func TestStreamConflictExitsOneWithTheActualRevision(t *testing.T) {
	url := startEventStore(t)
	if r := streamCLI(t, url)("stream", "append", "orders/o-1", "--type", "E", "--data", "{}"); r.err != nil {
		t.Fatal(r.err)
	}
	var stdout, stderr bytes.Buffer
	command := mainCommand(url, "stream", "append", "orders/o-1", "--type", "E", "--data", "{}", "--expected-revision", "no-stream")
	command.Stdout, command.Stderr = &stdout, &stderr
	err := command.Run()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
		t.Fatalf("err %v, want exit code 1", err)
	}
	want := "cairn: wrong expected revision for orders/o-1: expected no-stream, but its revision is 0\n"
	if stderr.String() != want || stdout.Len() != 0 {
		t.Errorf("stderr %q, stdout %q; want stderr %q", stderr.String(), stdout.String(), want)
	}
}

func TestStreamSubscribeStopsOnSignals(t *testing.T) {
	url := startEventStore(t)
	s := streamCLI(t, url)
	for range 2 {
		if r := s("stream", "append", "orders/o-1", "--type", "E", "--data", "{}"); r.err != nil {
			t.Fatal(r.err)
		}
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		command := mainCommand(url, "stream", "subscribe", "orders/o-1")
		stdout, err := command.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr testio.Buffer
		command.Stderr = &stderr
		if err := command.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(stdout)
		for rev := range 2 {
			if !lines.Scan() || !strings.HasPrefix(lines.Text(), fmt.Sprintf("o-1\t%d\tE\t", rev)) {
				_ = command.Process.Kill()
				t.Fatalf("line %q, want revision %d (err %v)", lines.Text(), rev, lines.Err())
			}
		}
		deadline := time.Now().Add(streamWaitMax)
		for !strings.Contains(stderr.String(), "caught up") && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if err := command.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- command.Wait() }()
		select {
		case err := <-done:
			want := "caught up with orders/o-1 after 2 events; waiting for new ones\nstopped after 2 events; continue with --from 2\n"
			if err != nil || stderr.String() != want {
				t.Errorf("exit after %s: %v, stderr %q, want %q", sig, err, stderr.String(), want)
			}
		case <-time.After(streamWaitMax):
			_ = command.Process.Kill()
			t.Fatalf("subscribe did not stop on %s", sig)
		}
	}
}

func TestBenchEventStore(t *testing.T) {
	url := startEventStore(t)
	r := cairn(t, "bench", "append", "--server", url, "--writers", "4", "--duration", "300ms", "--json")
	var s struct {
		Workload         string  `json:"workload"`
		Operations       int64   `json:"operations"`
		RecordsPerSecond float64 `json:"records_per_second"`
		Latency          struct {
			P99 float64 `json:"p99_ms"`
		} `json:"latency"`
	}
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &s) != nil || s.Workload != "append" || s.Operations == 0 || s.RecordsPerSecond <= 0 || s.Latency.P99 <= 0 {
		t.Fatalf("bench append: %q %v", r.stdout, r.err)
	}
	r = cairn(t, "bench", "read-stream", "--server", url, "--events", "20", "--other-events", "2000", "--duration", "200ms")
	if r.err != nil || !strings.Contains(r.stdout, "read-stream on bench-read-") || !strings.Contains(r.stdout, "latency ms: p50") {
		t.Fatalf("bench read-stream: %q %v", r.stdout, r.err)
	}
}

// TestStreamAppendOfJSONThatIsNotIsRefused proves that data labelled
// application/json must parse: the server refuses it with INVALID_ARGUMENT,
// the CLI shows why, and nothing is stored.
func TestStreamAppendOfJSONThatIsNotIsRefused(t *testing.T) {
	url := startEventStore(t)
	run := streamCLI(t, url)
	r := run("stream", "append", "orders/o-1", "--type", "E", "--data", "not json", "--content-type", "application/json")
	if r.err == nil || !strings.Contains(r.err.Error(), "invalid_argument") || !strings.Contains(r.err.Error(), "not valid JSON") {
		t.Fatalf("append of non-JSON as application/json: %v, want invalid_argument saying the data is not JSON", r.err)
	}
	if read := run("stream", "read", "orders/o-1"); read.err == nil && read.stdout != "" {
		t.Errorf("the refused event was stored: %q", read.stdout)
	}
}
