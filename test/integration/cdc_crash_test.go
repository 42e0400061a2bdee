package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/internal/pgtest"
)

// pg is the PostgreSQL of the CDC tests, started at first use and stopped
// by TestMain.
var pg = pgtest.Cluster{Logical: true}

const (
	cdcCrashTxns    = 400
	cdcCrashKeys    = 25
	cdcCrashKills   = 4
	cdcCrashWaitMax = 30 * time.Second
)

// TestCDCSurvivesSIGKILL proves effectively once against real crashes: a
// connector created with the CLI streams a table while writers commit
// transactions to PostgreSQL and `cairn serve` is SIGKILLed and restarted
// again and again; in the end a Kafka consumer finds every committed change
// exactly once, and each key's changes in commit order.
func TestCDCSurvivesSIGKILL(t *testing.T) {
	dsn := pg.CreateDatabase(t)
	ctx := context.Background()
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	if _, err := db.Exec(ctx, `CREATE TABLE kv (id int PRIMARY KEY, v int);
		CREATE TABLE outbox (id uuid PRIMARY KEY, aggregatetype text, aggregateid text, type text, payload jsonb)`); err != nil {
		t.Fatal(err)
	}
	s := startCairn(t, "")
	// Slot names are the server's, shared by its databases: one per run.
	slot := "cairn_pg_" + strings.TrimSuffix(dsn[strings.LastIndex(dsn, "/")+1:], "?sslmode=disable")
	create := exec.Command(cairnBinary, "connector", "create", "postgres", "pg", "--dsn", dsn, "--tables", "kv,outbox", "--slot", slot,
		"--outbox-table", "outbox", "--outbox-topic", "kv-events",
		"--partitions", "3", "--heartbeat-interval", "200ms", "--server", "http://"+s.httpAddr)
	create.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("connector create: %v\n%s", err, out)
	}

	// Changes are captured from the slot's creation on (no snapshot yet):
	// write once the connector streams.
	for i := 0; ; i++ {
		out, _ := exec.Command(cairnBinary, "connector", "status", "pg", "--server", "http://"+s.httpAddr).CombinedOutput()
		if strings.Contains(string(out), "state: streaming\n") {
			break
		}
		if i == 300 {
			t.Fatalf("the connector is not streaming after 30 s:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Transaction i sets two keys to i: each (key, i) is one change.
	written := make(chan error, 1)
	go func() {
		w, err := pgx.Connect(ctx, dsn)
		if err != nil {
			written <- err
			return
		}
		defer w.Close(ctx)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := 1; i <= cdcCrashTxns; i++ {
			a := rng.IntN(cdcCrashKeys)
			b := (a + 1 + rng.IntN(cdcCrashKeys-1)) % cdcCrashKeys
			// The outbox row of key a's change, in the same transaction.
			sql := fmt.Sprintf(`BEGIN; INSERT INTO kv VALUES (%d, %d) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v; INSERT INTO kv VALUES (%d, %d) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v;
				INSERT INTO outbox VALUES (gen_random_uuid(), 'kv', '%d', 'Set', '{"v": %d}'); DELETE FROM outbox; COMMIT`, a, i, b, i, a, i)
			if _, err := w.Exec(ctx, sql); err != nil {
				written <- err
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		written <- nil
	}()
	for kill := 0; kill < cdcCrashKills; kill++ {
		time.Sleep(time.Duration(300+rand.IntN(700)) * time.Millisecond)
		s.Kill()
		s.Restart()
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(s.kafkaAddr), kgo.ConsumeTopics("pg.public.kv"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// A transaction a kill cut short is in the log, aborted.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, cdcCrashWaitMax)
	defer cancel()
	type change struct{ key, value int }
	seen := map[change]int{}
	last := map[int]int{}
	total := 0
	for total < 2*cdcCrashTxns {
		fs := cl.PollFetches(pctx)
		if pctx.Err() != nil {
			status, _ := exec.Command(cairnBinary, "connector", "status", "pg", "--server", "http://"+s.httpAddr).CombinedOutput()
			var missing []int
			for i := 1; i <= cdcCrashTxns; i++ {
				n := 0
				for k := 0; k < cdcCrashKeys; k++ {
					n += seen[change{k, i}]
				}
				if n != 2 {
					missing = append(missing, i)
				}
			}
			t.Fatalf("%d changes after %s, want %d; transactions not whole: %v\nstatus:\n%s", total, cdcCrashWaitMax, 2*cdcCrashTxns, missing, status)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var e struct {
				After struct{ ID, V int } `json:"after"`
				Op    string              `json:"op"`
			}
			if err := json.Unmarshal(r.Value, &e); err != nil {
				t.Fatalf("value %s: %v", r.Value, err)
			}
			c := change{e.After.ID, e.After.V}
			seen[c]++
			if seen[c] > 1 {
				t.Fatalf("key %d value %d twice", c.key, c.value)
			}
			if c.value < last[c.key] {
				t.Fatalf("key %d: %d after %d, against commit order", c.key, c.value, last[c.key])
			}
			last[c.key] = c.value
			total++
		})
	}
	// Nothing more: a change doubled after the count was reached shows here.
	tctx, cancel2 := context.WithTimeout(ctx, time.Second)
	defer cancel2()
	if extra := cl.PollFetches(tctx).NumRecords(); extra > 0 {
		t.Fatalf("%d records past the %d changes committed", extra, 2*cdcCrashTxns)
	}
	// The outbox: one event per transaction in stream kv/<key>, in commit
	// order, read with the event-store API.
	es, err := client.New("http://" + s.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	events := 0
	for k := 0; k < cdcCrashKeys; k++ {
		prev := 0
		for e, err := range es.ReadStreamAll(ctx, "kv-events", fmt.Sprintf("kv/%d", k)) {
			if err != nil {
				if strings.Contains(err.Error(), "not found") {
					break
				}
				t.Fatalf("stream kv/%d: %v", k, err)
			}
			var p struct{ V int }
			if err := json.Unmarshal(e.Data, &p); err != nil {
				t.Fatal(err)
			}
			if p.V <= prev {
				t.Fatalf("stream kv/%d: %d after %d: doubled or out of order", k, p.V, prev)
			}
			prev = p.V
			events++
		}
	}
	if events != cdcCrashTxns {
		t.Fatalf("%d outbox events, want %d", events, cdcCrashTxns)
	}
	t.Logf("%d changes and %d outbox events exactly once across %d SIGKILLs", total, events, cdcCrashKills)
}
