package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
)

var cdcSnapshotRows = flag.Int("cdc.snapshot-rows", 1_000_000, "rows of TestCDCSnapshotResumesAfterSIGKILL's table")

const (
	// cdcSnapshotChunk is the connector's snapshot chunk (rows per read and
	// per progress record), its default.
	cdcSnapshotChunk = 10_000
	// cdcSnapshotKills are the SIGKILLs during the snapshot.
	cdcSnapshotKills = 2
	cdcSnapshotWait  = 3 * time.Minute
	cdcSnapshotPoll  = 20 * time.Millisecond
)

// TestCDCSnapshotResumesAfterSIGKILL: the initial snapshot of a large table,
// interrupted by SIGKILL twice while partway, resumes after its last
// recorded chunk (the progress records never go back, and the last run reads
// fewer rows than the table holds), and every row arrives exactly once as an
// op=r event: docs/cdc.md promises that rows of a chunk some partitions
// already hold are skipped by their positions.
func TestCDCSnapshotResumesAfterSIGKILL(t *testing.T) {
	rows := *cdcSnapshotRows
	if rows < 4*cdcSnapshotChunk {
		t.Fatalf("-cdc.snapshot-rows %d: at least %d, so that the snapshot has chunks to interrupt", rows, 4*cdcSnapshotChunk)
	}
	dsn := pg.CreateDatabase(t)
	ctx := context.Background()
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	if _, err := db.Exec(ctx, fmt.Sprintf(`CREATE TABLE big (id int PRIMARY KEY, v int);
		INSERT INTO big SELECT g, g %% 1000 FROM generate_series(1, %d) g`, rows)); err != nil {
		t.Fatal(err)
	}
	s := startCairn(t, "")
	slot := "cairn_big_" + strings.TrimSuffix(dsn[strings.LastIndex(dsn, "/")+1:], "?sslmode=disable")
	create := exec.Command(cairnBinary, "connector", "create", "postgres", "big", "--dsn", dsn, "--tables", "big", "--slot", slot,
		"--partitions", "3", "--server", "http://"+s.httpAddr)
	create.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("connector create: %v\n%s", err, out)
	}

	// Kill when this run has read a quarter of the table: each run reads
	// some chunks, and the snapshot is still partway at every kill.
	for kill := 0; kill < cdcSnapshotKills; kill++ {
		m := waitConnector(t, s, "big", func(m connectorInfo) bool {
			if m.State == "streaming" {
				t.Fatalf("the snapshot ended before kill %d: too few rows to interrupt (%d)", kill+1, rows)
			}
			return m.State == "snapshot" && m.Metrics.SnapshotRows >= int64(rows/4)
		})
		s.Kill()
		t.Logf("SIGKILL %d while the snapshot had read %d rows in this run", kill+1, m.Metrics.SnapshotRows)
		s.Restart()
	}
	last := waitConnector(t, s, "big", func(m connectorInfo) bool { return m.State == "streaming" })
	// The last run counts only the rows it read itself: fewer than the
	// table holds unless it started over.
	if n := last.Metrics.SnapshotRows; n <= 0 || n >= int64(rows) {
		t.Fatalf("the last run read %d snapshot rows of %d: want a resumed part", n, rows)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(s.kafkaAddr), kgo.ConsumeTopics("big.public.big", "big.__heartbeat"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, cdcSnapshotWait)
	defer cancel()
	seen := make([]uint8, rows+1)
	var progress []snapshotProgressRecord
	total, done := 0, false
	for total < rows || !done {
		fs := cl.PollFetches(pctx)
		if pctx.Err() != nil {
			t.Fatalf("%d of %d rows after %s (snapshot done recorded: %v)", total, rows, cdcSnapshotWait, done)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Topic == "big.__heartbeat" {
				if string(r.Key) == "snapshot:public.big" {
					var p snapshotProgressRecord
					if err := json.Unmarshal(r.Value, &p); err != nil {
						t.Fatalf("progress %s: %v", r.Value, err)
					}
					progress = append(progress, p)
					done = done || p.Done
				}
				return
			}
			var e struct {
				After struct{ ID int } `json:"after"`
				Op    string           `json:"op"`
			}
			if err := json.Unmarshal(r.Value, &e); err != nil {
				t.Fatalf("value %s: %v", r.Value, err)
			}
			if e.Op != "r" || e.After.ID < 1 || e.After.ID > rows {
				t.Fatalf("unexpected event %s", r.Value)
			}
			if seen[e.After.ID]++; seen[e.After.ID] > 1 {
				t.Fatalf("row %d twice", e.After.ID)
			}
			total++
		})
	}
	// Past them nothing more of the snapshot: no row, no progress record.
	// The heartbeats an idle connector writes may follow (when the
	// server's WAL moved: other databases' writes move it too).
	tctx, cancel2 := context.WithTimeout(ctx, time.Second)
	defer cancel2()
	extra := 0
	cl.PollFetches(tctx).EachRecord(func(r *kgo.Record) {
		if r.Topic != "big.__heartbeat" || string(r.Key) == "snapshot:public.big" {
			extra++
		}
	})
	if extra > 0 {
		t.Fatalf("%d records past the %d rows", extra, rows)
	}
	// Resumed, not restarted: each progress record is one chunk past the
	// one before (a restart from the first chunk would go back to one
	// chunk's rows); the last says done with every row.
	for i, p := range progress {
		prev := uint32(0)
		if i > 0 {
			prev = progress[i-1].Rows
		}
		step := p.Rows - prev
		if p.Rows < prev || step > cdcSnapshotChunk || (step < cdcSnapshotChunk && !p.Done) {
			t.Fatalf("progress record %d has %d rows after %d: not one chunk on", i, p.Rows, prev)
		}
	}
	if p := progress[len(progress)-1]; !p.Done || p.Rows != uint32(rows) {
		t.Fatalf("last progress record %+v, want done with %d rows", p, rows)
	}
	t.Logf("%d rows exactly once across %d SIGKILLs in the snapshot; %d progress records; the last run read %d rows",
		total, cdcSnapshotKills, len(progress), last.Metrics.SnapshotRows)
}

// snapshotProgressRecord is the value of a snapshot progress record in the
// heartbeat topic (docs/cdc.md).
type snapshotProgressRecord struct {
	Rows uint32 `json:"rows"`
	Done bool   `json:"done"`
}

// connectorInfo is the part of GET /v1/connectors/NAME the tests read.
type connectorInfo struct {
	State   string `json:"state"`
	Error   string `json:"error"`
	Metrics struct {
		SnapshotRows int64 `json:"snapshot_rows"`
	} `json:"metrics"`
}

// waitConnector polls the connector's status until ok holds, for at most
// cdcSnapshotWait.
func waitConnector(t *testing.T, s *cairnServer, name string, ok func(connectorInfo) bool) connectorInfo {
	t.Helper()
	deadline := time.Now().Add(cdcSnapshotWait)
	var last string
	for time.Now().Before(deadline) {
		status, body, err := httpGet("http://" + s.httpAddr + "/v1/connectors/" + name)
		if err == nil && status == http.StatusOK {
			var m connectorInfo
			if err := json.NewDecoder(bytes.NewReader([]byte(body))).Decode(&m); err != nil {
				t.Fatalf("status %s: %v", body, err)
			}
			if m.State == "failed" {
				t.Fatalf("connector failed: %s", m.Error)
			}
			if ok(m) {
				return m
			}
		}
		last = fmt.Sprintf("status %d body %s err %v", status, body, err)
		time.Sleep(cdcSnapshotPoll)
	}
	t.Fatalf("connector %s: condition not met after %s; last answer: %s", name, cdcSnapshotWait, last)
	return connectorInfo{}
}
