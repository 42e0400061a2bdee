package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/cdc"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/internal/pgtest"
)

var pg = pgtest.Cluster{Logical: true}

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// errCrash is what memLog's waits return once crashAfter appends were
// made: the records are in the log, the connector never hears so.
var errCrash = errors.New("simulated crash after an append")

// memLog is a Log in memory. Its appends are atomic and durable at once,
// unless crashAfter is set: then the append that reaches it is kept but
// its wait fails, as when a process dies between append and confirm.
type memLog struct {
	mu         sync.Mutex
	topics     map[string]int32
	configs    map[string]map[string]string
	parts      map[cdc.PartitionID][]batch.Record
	appends    int
	crashAfter int // 0: never
	changed    chan struct{}
	// onAppend, when set, runs before each append (without the lock).
	onAppend func(p cdc.PartitionID)
}

func newMemLog() *memLog {
	return &memLog{topics: map[string]int32{}, parts: map[cdc.PartitionID][]batch.Record{}, changed: make(chan struct{})}
}

func (l *memLog) Partitions(_ context.Context, topic string, n int32, configs map[string]string) (int32, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if got, ok := l.topics[topic]; ok {
		return got, nil
	}
	l.topics[topic] = n
	if l.configs == nil {
		l.configs = map[string]map[string]string{}
	}
	l.configs[topic] = configs
	return n, nil
}

func (l *memLog) Topics(prefix string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for t := range l.topics {
		if strings.HasPrefix(t, prefix) {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

func (l *memLog) LastPosition(_ context.Context, p cdc.PartitionID) (cdc.Position, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	recs := l.parts[p]
	if len(recs) > 3 {
		recs = recs[len(recs)-3:]
	}
	return cdc.LastPosition(recs)
}

func (l *memLog) Records(_ context.Context, p cdc.PartitionID, fn func(batch.Record) error) error {
	l.mu.Lock()
	recs := append([]batch.Record(nil), l.parts[p]...)
	l.mu.Unlock()
	for _, r := range recs {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (l *memLog) Append(_ context.Context, p cdc.PartitionID, recs []batch.Record) (func(context.Context) error, error) {
	if l.onAppend != nil {
		l.onAppend(p)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.topics[p.Topic]; !ok {
		return nil, fmt.Errorf("append to a missing topic %s", p.Topic)
	}
	for _, r := range recs {
		r.Offset = int64(len(l.parts[p]))
		l.parts[p] = append(l.parts[p], r)
	}
	l.appends++
	close(l.changed)
	l.changed = make(chan struct{})
	if l.crashAfter > 0 && l.appends >= l.crashAfter {
		l.crashAfter = 0
		return func(context.Context) error { return errCrash }, nil
	}
	return func(context.Context) error { return nil }, nil
}

func (l *memLog) records(topic string) []batch.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []batch.Record
	for i := int32(0); i < l.topics[topic]; i++ {
		out = append(out, l.parts[cdc.PartitionID{Topic: topic, Index: i}]...)
	}
	return out
}

// waitRecords waits (bounded) until topic holds at least n records.
func (l *memLog) waitRecords(t testing.TB, topic string, n int, errs <-chan error) []batch.Record {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		l.mu.Lock()
		ch := l.changed
		l.mu.Unlock()
		if recs := l.records(topic); len(recs) >= n {
			return recs
		}
		select {
		case <-ch:
		case err := <-errs:
			t.Fatalf("the connector stopped waiting for %d records of %s: %v", n, topic, err)
		case <-deadline:
			t.Fatalf("%s: %d records after 60 s, want %d", topic, len(l.records(topic)), n)
		}
	}
}

// envelope is the part of Debezium's value the tests read.
type envelope struct {
	Before map[string]any `json:"before"`
	After  map[string]any `json:"after"`
	Op     string         `json:"op"`
	Source struct {
		Snapshot string `json:"snapshot"`
		Table    string `json:"table"`
		TxID     int64  `json:"txId"`
		LSN      int64  `json:"lsn"`
		Sequence string `json:"sequence"`
	} `json:"source"`
	Message *struct {
		Prefix  string `json:"prefix"`
		Content string `json:"content"`
	} `json:"message"`
}

func decode(t testing.TB, r batch.Record) envelope {
	t.Helper()
	var e envelope
	if err := json.Unmarshal(r.Value, &e); err != nil {
		t.Fatalf("value %s: %v", r.Value, err)
	}
	return e
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// running is a connector running in the background.
type running struct {
	c      *Connector
	cancel context.CancelFunc
	errs   chan error    // Run's error, once
	done   chan struct{} // closed when Run returned, err set
	err    error
}

// uniqueSlot gives cfg a slot of its own database: slot names are shared by
// the server's databases, and a test may run again (-count) in a new one.
func uniqueSlot(cfg Config) Config {
	if cfg.Slot == "" {
		db := cfg.DSN[strings.LastIndex(cfg.DSN, "/")+1:]
		db, _, _ = strings.Cut(db, "?")
		cfg.Slot = "cairn_" + cfg.Name + "_" + db
	}
	return cfg
}

func start(t testing.TB, cfg Config, log Log) *running {
	t.Helper()
	cfg = uniqueSlot(cfg)
	c, err := New(cfg, log, env.RealClock(), quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, cancel: cancel, errs: make(chan error, 1), done: make(chan struct{})}
	go func() {
		r.err = c.Run(ctx)
		close(r.done)
		r.errs <- r.err
	}()
	t.Cleanup(func() {
		r.stop(t)
		// Slots outlive databases: free the server's for the next tests.
		conn, err := pgx.Connect(context.Background(), cfg.DSN)
		if err != nil {
			return
		}
		defer conn.Close(context.Background())
		for i := 0; i < 100; i++ {
			var active bool
			err := conn.QueryRow(context.Background(), `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, cfg.Slot).Scan(&active)
			if err != nil { // gone (or the server is): nothing to free
				return
			}
			if !active {
				_, _ = conn.Exec(context.Background(), `SELECT pg_drop_replication_slot($1)`, cfg.Slot)
				continue
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return r
}

// stop ends the connector and returns Run's error (nil after a clean stop).
func (r *running) stop(t testing.TB) error {
	if r.cancel != nil {
		r.cancel()
		r.cancel = nil
	}
	select {
	case <-r.done:
		return r.err
	case <-time.After(30 * time.Second):
		t.Fatal("the connector did not stop within 30 s")
		return nil
	}
}

// waitStreaming waits until the connector has started replication, so that
// changes made after it are captured.
func (r *running) waitStreaming(t testing.TB) {
	t.Helper()
	for i := 0; i < 600; i++ {
		if st := r.c.Status(); st.State == "streaming" {
			return
		} else if st.State == "stopped" {
			t.Fatalf("connector stopped: %s", st.Error)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the connector is not streaming after 30 s")
}

func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func exec(t testing.TB, conn *pgx.Conn, sqls ...string) {
	t.Helper()
	for _, s := range sqls {
		if _, err := conn.Exec(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func header(r batch.Record, name string) string {
	for _, h := range r.Headers {
		if h.Key == name {
			return string(h.Value)
		}
	}
	return ""
}
