package connectors_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/connectors"
	"github.com/cairnlog/cairn/internal/pgtest"
	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/storage/vfs"
)

var pg = pgtest.Cluster{Logical: true}

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

func startServer(t *testing.T, fsys vfs.FS) *server.Server {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr = "/data", "127.0.0.1:0", "127.0.0.1:0"
	s, err := server.Start(cfg, fsys, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func call(t *testing.T, method, url string, body any, out any) int {
	t.Helper()
	var in io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		in = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, in)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %s: %v", method, url, b, err)
		}
	}
	return resp.StatusCode
}

// debezium is what a Debezium consumer reads of a change event.
type debezium struct {
	Before map[string]any `json:"before"`
	After  map[string]any `json:"after"`
	Op     string         `json:"op"`
	Source struct {
		Connector string `json:"connector"`
		Name      string `json:"name"`
		DB        string `json:"db"`
		Table     string `json:"table"`
		LSN       int64  `json:"lsn"`
	} `json:"source"`
}

// A connector created over the HTTP API runs inside cairn serve; a
// franz-go consumer reads its Debezium envelopes; the definition survives a
// restart of the server, and the changes made while it was down arrive
// once; pause, resume, status, list and delete answer.
func TestConnectorInsideServer(t *testing.T) {
	dsn := pg.CreateDatabase(t)
	ctx := context.Background()
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	if _, err := db.Exec(ctx, `CREATE TABLE orders (id int PRIMARY KEY, item text)`); err != nil {
		t.Fatal(err)
	}
	fsys := vfs.NewMem()
	s := startServer(t, fsys)
	api := "http://" + s.HTTPAddr() + connectors.PathPrefix
	// Slot names are the server's, shared by its databases: one per run.
	slot := "cairn_app_" + strings.TrimSuffix(dsn[strings.LastIndex(dsn, "/")+1:], "?sslmode=disable")
	def := connectors.Definition{Name: "app", Type: "postgres", DSN: dsn, Tables: []string{"public.orders"}, HeartbeatIntervalMs: 200, Slot: slot}
	if code := call(t, "POST", api, def, nil); code != http.StatusOK {
		t.Fatalf("create: %d", code)
	}
	if code := call(t, "POST", api, def, nil); code != http.StatusConflict {
		t.Fatalf("create again: %d, want 409", code)
	}
	if code := call(t, "POST", api, connectors.Definition{Name: "bad name", Type: "postgres", DSN: dsn}, nil); code != http.StatusBadRequest {
		t.Fatalf("create an invalid one: %d, want 400", code)
	}
	waitState(t, api+"/app", "streaming")
	insert(t, db, 1, 2, 3)

	seen := consume(t, s.KafkaAddr(), "app.public.orders", 3)
	e := seen[0]
	if e.Op != "c" || e.After["id"] != float64(1) || e.After["item"] != "item 1" || e.Source.Connector != "postgresql" || e.Source.Name != "app" || e.Source.Table != "orders" || e.Source.LSN == 0 {
		t.Fatalf("first event: %+v", e)
	}

	if code := call(t, "POST", api+"/app/pause", nil, nil); code != http.StatusOK {
		t.Fatalf("pause: %d", code)
	}
	waitState(t, api+"/app", "paused")
	insert(t, db, 4) // while paused
	if code := call(t, "POST", api+"/app/resume", nil, nil); code != http.StatusOK {
		t.Fatalf("resume: %d", code)
	}
	waitState(t, api+"/app", "streaming")
	consume(t, s.KafkaAddr(), "app.public.orders", 4)

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	insert(t, db, 5, 6) // while the server is down
	s = startServer(t, fsys)
	defer s.Close()
	api = "http://" + s.HTTPAddr() + connectors.PathPrefix
	waitState(t, api+"/app", "streaming")
	insert(t, db, 7)
	seen = consume(t, s.KafkaAddr(), "app.public.orders", 7)
	for i, e := range seen {
		if e.After["id"] != float64(i+1) {
			t.Fatalf("event %d: id %v: every change once, in commit order", i, e.After["id"])
		}
	}
	var info connectors.Info
	call(t, "GET", api+"/app", nil, &info)
	if info.Metrics.Events < 1 || info.Metrics.ConfirmedLSN == "0/0" || info.Definition.DSN == "" {
		t.Fatalf("status: %+v", info)
	}
	resp, err := http.Get("http://" + s.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`cairn_connector_streaming{connector="app"} 1`, `cairn_connector_slot_lag_bytes{connector="app"}`, `cairn_connector_events_total{connector="app"}`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	var list []connectors.Info
	if call(t, "GET", api, nil, &list); len(list) != 1 || list[0].Definition.Name != "app" {
		t.Fatalf("list: %+v", list)
	}
	if code := call(t, "DELETE", api+"/app", nil, nil); code != http.StatusOK {
		t.Fatalf("delete: %d", code)
	}
	if code := call(t, "GET", api+"/app", nil, nil); code != http.StatusNotFound {
		t.Fatalf("status after delete: %d", code)
	}
}

func insert(t *testing.T, db *pgx.Conn, ids ...int) {
	t.Helper()
	for _, id := range ids {
		if _, err := db.Exec(context.Background(), fmt.Sprintf(`INSERT INTO orders VALUES (%d, 'item %d')`, id, id)); err != nil {
			t.Fatal(err)
		}
	}
}

func waitState(t *testing.T, url, state string) {
	t.Helper()
	var info connectors.Info
	for i := 0; i < 300; i++ {
		if call(t, "GET", url, nil, &info) == http.StatusOK && info.State == state {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: state %q after 30 s (%s), want %q", url, info.State, info.Error, state)
}

// consume reads the topic from the start with franz-go until it has n
// events and returns them.
func consume(t *testing.T, addr, topic string, n int) []debezium {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []debezium
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: %d events after 30 s, want %d", topic, len(out), n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var e debezium
			if err := json.Unmarshal(r.Value, &e); err != nil {
				t.Fatalf("value %s: %v", r.Value, err)
			}
			out = append(out, e)
		})
	}
	if len(out) != n {
		t.Fatalf("%s: %d events, want %d", topic, len(out), n)
	}
	return out
}
