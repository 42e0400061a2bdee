package projection

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cairnlog/cairn/client"
)

// The read model of these tests counts how often each event was applied.
const (
	createAppliedSQL = `CREATE TABLE IF NOT EXISTS applied (event_id TEXT PRIMARY KEY, stream TEXT NOT NULL, times INTEGER NOT NULL)`
	countEventSQL    = `INSERT INTO applied (event_id, stream, times) VALUES (?, ?, 1)
ON CONFLICT (event_id) DO UPDATE SET times = applied.times + 1`
)

func createApplied(t *testing.T, d *testDB) {
	t.Helper()
	if _, err := d.db.Exec(createAppliedSQL); err != nil {
		t.Fatal(err)
	}
}

func countEvent(dialect Dialect) Handler {
	return func(ctx context.Context, tx *sql.Tx, ev client.RecordedEvent) error {
		_, err := tx.ExecContext(ctx, dialect.bind(countEventSQL), ev.ID, ev.Stream)
		return err
	}
}

// applied returns how often each event id was applied.
func applied(t *testing.T, d *testDB) map[string]int {
	t.Helper()
	rows, err := d.db.Query(`SELECT event_id, times FROM applied`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		var times int
		if err := rows.Scan(&id, &times); err != nil {
			t.Fatal(err)
		}
		out[id] = times
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkExactlyOnce fails unless every id in want was applied once and
// nothing else was applied.
func checkExactlyOnce(t *testing.T, d *testDB, want []string) {
	t.Helper()
	got := applied(t, d)
	for _, id := range want {
		if got[id] != 1 {
			t.Errorf("event %s applied %d times", id, got[id])
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d events applied, want %d", len(got), len(want))
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// appendCounted appends n events of type Counted to stream and returns their ids.
func appendCounted(t *testing.T, ctx context.Context, c *client.Client, topic, stream string, n int) []string {
	t.Helper()
	evs := make([]client.EventData, n)
	ids := make([]string, n)
	for i := range evs {
		ids[i] = uuid.NewString()
		evs[i] = client.EventData{ID: ids[i], Type: "Counted", Data: []byte(`{}`)}
	}
	if _, err := c.Append(ctx, topic, stream, client.Any, evs...); err != nil {
		t.Fatal(err)
	}
	return ids
}

// topicEnd is the next offset of every partition of topic.
func topicEnd(t *testing.T, ctx context.Context, c *client.Client, topic string) []client.Position {
	t.Helper()
	var from []client.Position
	for range 1000 {
		page, err := c.ReadTopic(ctx, topic, client.FromPositions(from...))
		if err != nil {
			t.Fatal(err)
		}
		from = page.Next
		if page.EndOfTopic {
			return from
		}
	}
	t.Fatal("topic did not end in 1000 pages")
	return nil
}

func quiet() Option { return WithLogger(slog.New(slog.DiscardHandler)) }

// logCounter counts log records by message, so a test can tell which
// paths a runner took.
type logCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (l *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCounter) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logCounter) WithGroup(string) slog.Handler            { return l }
func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = map[string]int{}
	}
	l.counts[r.Message]++
	return nil
}

func (l *logCounter) count(message string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[message]
}

// runInBackground runs r until the returned stop is called; stop fails the
// test if Run did not return nil promptly.
func runInBackground(t *testing.T, r *Runner) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	stop = func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after its context ended", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s of its context ending")
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestProjectAndResume: a filtered projection over three partitions applies
// each event once, stores the positions that filtered-out records moved,
// rides out a server restart, and resumes where it stopped.
func TestProjectAndResume(t *testing.T) {
	forEachDB(t, func(t *testing.T, d *testDB) {
		ts := startServer(t, 3)
		c := ts.client(t)
		ctx := testContext(t, 60*time.Second)
		createApplied(t, d)
		var want []string
		for i := range 10 {
			want = append(want, appendCounted(t, ctx, c, "ledger", fmt.Sprintf("acct-%d", i), 3)...)
			if _, err := c.Append(ctx, "ledger", fmt.Sprintf("acct-%d", i), client.Any, client.EventData{Type: "Ignored"}); err != nil {
				t.Fatal(err)
			}
		}
		logs := &logCounter{}
		// The runner's client tries each call once: one that retries would
		// resume the subscription below the runner, and the restart would
		// not reach the runner's own reconnection, which this test checks.
		once := ts.client(t, client.WithRetry(1, 0))
		r, err := New(once, d.db, "balances", "ledger", countEvent(mustDialect(t, d)), WithLogger(slog.New(logs)),
			WithFilter(client.Filter{EventTypePrefix: "Counted"}), ReconnectBackoff(20*time.Millisecond, 200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		stop := runInBackground(t, r)
		waitFor(t, "30 events projected", 20*time.Second, func() bool { return len(applied(t, d)) == len(want) })

		// Records the filter skips, once live, arrive as checkpoint
		// messages, which move the stored positions to the topic's end.
		for i := range 6 {
			if _, err := c.Append(ctx, "ledger", fmt.Sprintf("other-%d", i), client.Any, client.EventData{Type: "Ignored"}); err != nil {
				t.Fatal(err)
			}
		}
		end := topicEnd(t, ctx, c, "ledger")
		waitFor(t, "checkpoints at the topic's end", 10*time.Second, func() bool {
			got, err := r.Checkpoints(ctx)
			return err == nil && slices.Equal(got, end)
		})

		ts.restart()
		for i := range 5 {
			want = append(want, appendCounted(t, ctx, c, "ledger", fmt.Sprintf("acct-%d", i), 3)...)
		}
		waitFor(t, "events appended after the restart projected", 20*time.Second, func() bool { return len(applied(t, d)) == len(want) })
		if logs.count(interruptedMessage) == 0 {
			t.Error("the runner never logged an interruption: the restart did not break its subscription")
		}
		stop()
		checkExactlyOnce(t, d, want)

		// A new run starts at the checkpoints: nothing is applied again.
		want = append(want, appendCounted(t, ctx, c, "ledger", "acct-0", 1)...)
		stop = runInBackground(t, r)
		waitFor(t, "the new event projected", 20*time.Second, func() bool { return len(applied(t, d)) == len(want) })
		stop()
		checkExactlyOnce(t, d, want)
	})
}

func mustDialect(t *testing.T, d *testDB) Dialect {
	t.Helper()
	dialect, err := DetectDialect(d.db)
	if err != nil {
		t.Fatal(err)
	}
	return dialect
}

// TestPoisonEvent: an event the handler always fails on is tried the
// configured number of times, lands in <topic>.dlq with its source and
// error, and the events after it are still projected, once.
func TestPoisonEvent(t *testing.T) {
	forEachDB(t, func(t *testing.T, d *testDB) {
		ts := startServer(t, 1)
		c := ts.client(t)
		ctx := testContext(t, 60*time.Second)
		createApplied(t, d)
		count := countEvent(mustDialect(t, d))
		var poisonCalls atomic.Int32
		handler := func(ctx context.Context, tx *sql.Tx, ev client.RecordedEvent) error {
			if ev.Type == "Poison" {
				poisonCalls.Add(1)
				return fmt.Errorf("cannot project %s", ev.ID)
			}
			return count(ctx, tx, ev)
		}
		want := appendCounted(t, ctx, c, "orders", "order-1", 2)
		poison := client.EventData{ID: uuid.NewString(), Type: "Poison", Data: []byte(`{"bad":true}`), ContentType: "application/x-test",
			Metadata: map[string]string{"origin": "test"}}
		res, err := c.Append(ctx, "orders", "order-1", client.Any, poison)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, appendCounted(t, ctx, c, "orders", "order-1", 2)...)
		want = append(want, appendCounted(t, ctx, c, "orders", "order-2", 3)...)

		r, err := New(c, d.db, "order-view", "orders", handler, quiet(), HandlerRetries(3, time.Millisecond, 4*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		stop := runInBackground(t, r)
		waitFor(t, "the events around the poison projected", 20*time.Second, func() bool { return len(applied(t, d)) == len(want) })
		end := topicEnd(t, ctx, c, "orders")
		waitFor(t, "the checkpoint past every event", 10*time.Second, func() bool {
			got, err := r.Checkpoints(ctx)
			return err == nil && slices.Equal(got, end)
		})
		stop()
		checkExactlyOnce(t, d, want)
		if n := poisonCalls.Load(); n != 3 {
			t.Errorf("handler saw the poison event %d times, want 3", n)
		}

		dlq, err := c.ReadStream(ctx, "orders.dlq", "order-1")
		if err != nil {
			t.Fatal(err)
		}
		if len(dlq.Events) != 1 {
			t.Fatalf("dead-letter stream holds %d events, want 1", len(dlq.Events))
		}
		dl := dlq.Events[0]
		wantMetadata := map[string]string{
			MetadataSourceTopic:     "orders",
			MetadataSourcePartition: "0",
			MetadataSourceOffset:    fmt.Sprint(res.Position.Offset),
			MetadataSourceRevision:  "2",
			MetadataSourceEventID:   poison.ID,
			MetadataError:           "cannot project " + poison.ID,
			MetadataAttempts:        "3",
			MetadataProjection:      "order-view",
			"origin":                "test",
		}
		if dl.Type != "Poison" || string(dl.Data) != `{"bad":true}` || dl.ContentType != "application/x-test" || !maps.Equal(dl.Metadata, wantMetadata) {
			t.Fatalf("dead letter %+v\nwant metadata %v", dl, wantMetadata)
		}

		// Running again starts past the poison event: it is not retried.
		stop = runInBackground(t, r)
		want = append(want, appendCounted(t, ctx, c, "orders", "order-1", 1)...)
		waitFor(t, "a later event projected", 20*time.Second, func() bool { return len(applied(t, d)) == len(want) })
		stop()
		if n := poisonCalls.Load(); n != 3 {
			t.Errorf("poison event retried after it was dead-lettered: %d calls", n)
		}
	})
}

// TestTwoRunnersApplyOnce: two runners of one projection by mistake still
// apply each event once: the second finds the checkpoint moved and skips.
func TestTwoRunnersApplyOnce(t *testing.T) {
	forEachDB(t, func(t *testing.T, d *testDB) {
		ts := startServer(t, 2)
		c := ts.client(t)
		ctx := testContext(t, 60*time.Second)
		createApplied(t, d)
		var want []string
		for i := range 20 {
			want = append(want, appendCounted(t, ctx, c, "bids", fmt.Sprintf("lot-%d", i), 4)...)
		}
		for range 2 {
			r, err := New(c, d.db, "auction", "bids", countEvent(mustDialect(t, d)), quiet())
			if err != nil {
				t.Fatal(err)
			}
			runInBackground(t, r)
		}
		waitFor(t, "every bid projected", 20*time.Second, func() bool { return len(applied(t, d)) == len(want) })
		// Give the slower runner time to reach the end too.
		end := topicEnd(t, ctx, c, "bids")
		r, _ := New(c, d.db, "auction", "bids", countEvent(mustDialect(t, d)), quiet())
		waitFor(t, "the checkpoint at the end", 10*time.Second, func() bool {
			got, err := r.Checkpoints(ctx)
			return err == nil && slices.Equal(got, end)
		})
		time.Sleep(200 * time.Millisecond)
		checkExactlyOnce(t, d, want)
	})
}

// TestInvalidFilterIsFatal: a subscription the server refuses for good
// ends Run with the reason instead of retrying for ever.
func TestInvalidFilterIsFatal(t *testing.T) {
	d := openSQLite(t)
	ts := startServer(t, 1)
	c := ts.client(t)
	ctx := testContext(t, 30*time.Second)
	appendCounted(t, ctx, c, "t", "s", 1)
	r, err := New(c, d.db, "p", "t", countEvent(SQLite), quiet(), WithFilter(client.Filter{EventTypeRegex: "("}))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(ctx); err == nil || !strings.Contains(err.Error(), "event_type_regex") {
		t.Fatalf("Run = %v, want the regex refused", err)
	}
}

// TestDialect: placeholders per dialect and detection from the driver.
func TestDialect(t *testing.T) {
	if got := Postgres.bind("a = ? AND b = ?"); got != "a = $1 AND b = $2" {
		t.Errorf("postgres bind: %q", got)
	}
	if got := SQLite.bind("a = ? AND b = ?"); got != "a = ? AND b = ?" {
		t.Errorf("sqlite bind: %q", got)
	}
	for driver, want := range map[string]Dialect{"sqlite": SQLite, "pgx": Postgres} {
		db, err := sql.Open(driver, "unused")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := DetectDialect(db); err != nil || got != want {
			t.Errorf("%s: detected %s, %v", driver, got, err)
		}
		db.Close()
	}
}

// TestDeadLetterEvent: a dead letter stays appendable whatever the poison
// event held, and its id depends only on its source.
func TestDeadLetterEvent(t *testing.T) {
	md := map[string]string{}
	for i := range 64 {
		md[fmt.Sprintf("k%02d", i)] = "v"
	}
	ev := client.RecordedEvent{Topic: "t", Stream: "s", Position: client.Position{Partition: 2, Offset: 9}, Metadata: md}
	long := errors.New(strings.Repeat("é", 3000))
	dl := deadLetterEvent("p", ev, long, 5)
	if len(dl.Metadata) != metadataEntriesMax || dl.Metadata[MetadataAttempts] != "5" || dl.Metadata[MetadataSourcePartition] != "2" {
		t.Fatalf("metadata: %d entries, %v", len(dl.Metadata), dl.Metadata)
	}
	if e := dl.Metadata[MetadataError]; len(e) > errorBytesMax || !strings.HasPrefix(long.Error(), e) || !utf8Valid(e) {
		t.Fatalf("error cut to %d bytes, valid %v", len(e), utf8Valid(e))
	}
	if dl.Type != UntypedEventType {
		t.Fatalf("type %q", dl.Type)
	}
	again := deadLetterEvent("p", ev, errors.New("other"), 1)
	other := deadLetterEvent("p2", ev, long, 5)
	if again.ID != dl.ID || other.ID == dl.ID {
		t.Fatalf("ids: %s, %s, %s", dl.ID, again.ID, other.ID)
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// TestCheckpointAdvance: a checkpoint only moves forwards, and the upsert
// says whether it moved, on both dialects: what lets a second runner skip
// an event the first applied.
func TestCheckpointAdvance(t *testing.T) {
	forEachDB(t, func(t *testing.T, d *testDB) {
		ctx := testContext(t, 30*time.Second)
		store := checkpoints{dialect: mustDialect(t, d), projection: "p"}
		if err := store.create(ctx, d.db); err != nil {
			t.Fatal(err)
		}
		for i, step := range []struct {
			to    client.Position
			moved bool
		}{
			{client.Position{Partition: 0, Offset: 5}, true},
			{client.Position{Partition: 0, Offset: 5}, false},
			{client.Position{Partition: 0, Offset: 3}, false},
			{client.Position{Partition: 1, Offset: 2}, true},
			{client.Position{Partition: 0, Offset: 7}, true},
		} {
			tx, err := d.db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			moved, err := store.advance(ctx, tx, step.to)
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			if moved != step.moved {
				t.Errorf("step %d to %s: moved %v, want %v", i, step.to, moved, step.moved)
			}
		}
		got, err := store.load(ctx, d.db)
		if err != nil {
			t.Fatal(err)
		}
		if want := []client.Position{{Partition: 0, Offset: 7}, {Partition: 1, Offset: 2}}; !slices.Equal(got, want) {
			t.Fatalf("stored %v, want %v", got, want)
		}
		other, err := (checkpoints{dialect: store.dialect, projection: "q"}).load(ctx, d.db)
		if err != nil || len(other) != 0 {
			t.Fatalf("another projection sees %v, %v", other, err)
		}
	})
}

// TestConcurrentCreate: runners starting together on a fresh PostgreSQL
// database all find their checkpoint table, although CREATE TABLE IF NOT
// EXISTS races there.
func TestConcurrentCreate(t *testing.T) {
	for round := range 10 {
		db := openPostgres(t).db
		errs := make(chan error, 4)
		for range 4 {
			go func() { errs <- (checkpoints{dialect: Postgres}).create(t.Context(), db) }()
		}
		for range 4 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}

// TestMissingTopicIsNothingYet proves that a projection started before its
// topic exists waits quietly (no warning, only debug lines) and projects the
// first event once the topic appears.
func TestMissingTopicIsNothingYet(t *testing.T) {
	d := openSQLite(t)
	ts := startServer(t, 1)
	c := ts.client(t)
	ctx := testContext(t, 30*time.Second)
	createApplied(t, d)
	logs := &logCounter{}
	r, err := New(c, d.db, "early", "later", countEvent(mustDialect(t, d)), WithLogger(slog.New(logs)),
		ReconnectBackoff(5*time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	stop := runInBackground(t, r)
	defer stop()
	waitFor(t, "the runner to look for its topic twice", 10*time.Second, func() bool {
		return logs.count(waitingForTopicMessage)+logs.count(interruptedMessage) >= 2
	})
	want := appendCounted(t, ctx, c, "later", "first", 1)
	waitFor(t, "the first event projected", 10*time.Second, func() bool { return len(applied(t, d)) == len(want) })
	if n := logs.count(interruptedMessage); n != 0 {
		t.Errorf("a topic not created yet was logged %d times as an interruption", n)
	}
}
