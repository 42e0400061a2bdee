package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
)

// connectorsAPI sends one request to a node's connectors API and returns
// the status and body.
func connectorsAPI(t *testing.T, node *cairnServer, method, path string, body any) (int, string) {
	t.Helper()
	var in io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		in = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+node.httpAddr+"/v1/connectors"+path, in)
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// onConnectorsLeader retries a request on every live node until the one
// running the connectors answers it (the others answer 421), bounded.
func onConnectorsLeader(t *testing.T, nodes []*cairnServer, method, path string, body any) string {
	t.Helper()
	var last string
	for i := 0; i < 300; i++ {
		for _, n := range nodes {
			if !n.running() {
				continue
			}
			code, answer := connectorsAPI(t, n, method, path, body)
			if code == http.StatusOK {
				return answer
			}
			last = fmt.Sprintf("node %s: %d %s", n.httpAddr, code, answer)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s %s: no node answered: %s", method, path, last)
	return ""
}

// TestCDCClusterFailover: on three nodes, the connector runs on the node
// leading __cairn_connectors; when that node is SIGKILLed while
// transactions commit, another node starts the connector, which resumes
// from what the replicated topics hold: every change once, in commit order
// per key.
func TestCDCClusterFailover(t *testing.T) {
	const txns = 300
	dsn := pg.CreateDatabase(t)
	ctx := context.Background()
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	if _, err := db.Exec(ctx, `CREATE TABLE kv (id int PRIMARY KEY, v int)`); err != nil {
		t.Fatal(err)
	}
	nodes := startCairnCluster(t)
	slot := "cairn_ha_" + strings.TrimSuffix(dsn[strings.LastIndex(dsn, "/")+1:], "?sslmode=disable")
	def := map[string]any{"name": "ha", "type": "postgres", "dsn": dsn, "tables": []string{"kv"}, "slot": slot, "partitions": 3, "heartbeat_interval_ms": 200}
	onConnectorsLeader(t, nodes, "POST", "", def)
	for i := 0; ; i++ {
		if strings.Contains(onConnectorsLeader(t, nodes, "GET", "/ha", nil), `"state":"streaming"`) {
			break
		}
		if i == 300 {
			t.Fatal("the connector is not streaming after 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}

	written := make(chan error, 1)
	go func() {
		w, err := pgx.Connect(ctx, dsn)
		if err != nil {
			written <- err
			return
		}
		defer w.Close(ctx)
		for i := 1; i <= txns; i++ {
			if _, err := w.Exec(ctx, fmt.Sprintf(`INSERT INTO kv VALUES (%d, %d) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v`, i%10, i)); err != nil {
				written <- err
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		written <- nil
	}()
	time.Sleep(500 * time.Millisecond)
	leader := leaderOf(ctx, t, nodes, "__cairn_connectors", 0)
	nodes[leader-1].Kill()
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	var alive []string
	for _, n := range nodes {
		if n.running() {
			alive = append(alive, n.kafkaAddr)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(alive...), kgo.ConsumeTopics("ha.public.kv"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// A transaction a failover cut short is in the log, aborted.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	seen, last := map[int]bool{}, map[int]int{}
	for len(seen) < txns {
		fs := cl.PollFetches(pctx)
		if pctx.Err() != nil {
			t.Fatalf("%d changes after 90 s, want %d; status: %s", len(seen), txns, onConnectorsLeader(t, nodes, "GET", "/ha", nil))
		}
		fs.EachRecord(func(r *kgo.Record) {
			var e struct {
				After struct{ ID, V int } `json:"after"`
			}
			if err := json.Unmarshal(r.Value, &e); err != nil {
				t.Fatalf("value %s: %v", r.Value, err)
			}
			if seen[e.After.V] {
				t.Fatalf("change %d twice", e.After.V)
			}
			seen[e.After.V] = true
			if e.After.V < last[e.After.ID] {
				t.Fatalf("key %d: %d after %d", e.After.ID, e.After.V, last[e.After.ID])
			}
			last[e.After.ID] = e.After.V
		})
	}
	t.Logf("%d changes once across the SIGKILL of node %d, which ran the connector", len(seen), leader)
}
