// Command cdc measures Cairn's PostgreSQL connector inside `cairn serve`
// against what PostgreSQL itself delivers in the same run, as the figures of
// docs/cdc.md:
//
//   - streaming throughput, in changes/s, for single-row transactions and
//     for 1,000-row transactions, beside pg_recvlogical reading the same
//     changes with pgoutput from a slot created at the same point (a slot
//     has one reader at a time, so the reference reads a twin);
//
//   - the time from a PostgreSQL commit (the moment COMMIT returns to the
//     client) to the change read by a Kafka consumer of its topic, p50 and
//     p99, one single-row transaction every 2 ms;
//
//   - the initial snapshot's rate in rows/s beside COPY ... TO STDOUT of the
//     same table.
//
//     go run ./bench/cdc --dsn postgres://postgres@127.0.0.1:5432/postgres --cairn ./cairn --dir /var/tmp/x [--json]
//
// The database needs wal_level=logical and a superuser DSN (the connector
// creates publications); the program creates tables named cdcbench_* and
// drops its slots at the end. It starts `cairn serve` on dir and free
// 127.0.0.1 ports. Every wait is bounded by --timeout.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
)

type config struct {
	dsn, cairn, dir, recvlogical string
	singleTxns, bigTxns          int
	latencyTxns                  int
	snapshotRows                 int
	timeout                      time.Duration
	json                         bool
	cpuProfile                   string
	profileFor                   time.Duration
}

// Result is what one run measured; rates are per second of wall time.
type Result struct {
	SingleRowChanges     int     `json:"single_row_changes"`
	SingleRowCairn       float64 `json:"single_row_cairn_changes_per_second"`
	SingleRowRecvlogical float64 `json:"single_row_pg_recvlogical_changes_per_second"`
	BigTxnChanges        int     `json:"big_txn_changes"`
	BigTxnCairn          float64 `json:"big_txn_cairn_changes_per_second"`
	BigTxnRecvlogical    float64 `json:"big_txn_pg_recvlogical_changes_per_second"`
	LatencyTxns          int     `json:"latency_txns"`
	LatencyP50Ms         float64 `json:"latency_p50_ms"`
	LatencyP99Ms         float64 `json:"latency_p99_ms"`
	SnapshotRows         int     `json:"snapshot_rows"`
	SnapshotCairn        float64 `json:"snapshot_cairn_rows_per_second"`
	SnapshotCopy         float64 `json:"snapshot_copy_rows_per_second"`
}

func main() {
	var c config
	flag.StringVar(&c.dsn, "dsn", "", "a PostgreSQL superuser DSN, wal_level=logical")
	flag.StringVar(&c.cairn, "cairn", "cairn", "the cairn binary")
	flag.StringVar(&c.dir, "dir", "", "cairn serve's data directory (created; on the disk to measure)")
	flag.StringVar(&c.recvlogical, "pg-recvlogical", "pg_recvlogical", "the pg_recvlogical binary")
	flag.IntVar(&c.singleTxns, "single-row-txns", 20000, "single-row transactions streamed")
	flag.IntVar(&c.bigTxns, "big-txns", 50, "1,000-row transactions streamed")
	flag.IntVar(&c.latencyTxns, "latency-txns", 1000, "single-row transactions of the latency run, one every 2 ms")
	flag.IntVar(&c.snapshotRows, "snapshot-rows", 500000, "rows of the snapshot run's table")
	flag.DurationVar(&c.timeout, "timeout", 5*time.Minute, "bound of each wait")
	flag.BoolVar(&c.json, "json", false, "print the result as one JSON object")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "a directory: each timed Cairn run writes there cairn serve's CPU profile (<run>.pprof, from /debug/pprof/profile) for --profile-seconds")
	flag.DurationVar(&c.profileFor, "profile-seconds", 10*time.Second, "how long each --cpuprofile profile runs (from the timed run's start)")
	flag.Parse()
	if c.dsn == "" || c.dir == "" {
		fmt.Fprintln(os.Stderr, "cdc: --dsn and --dir are required")
		os.Exit(2)
	}
	r, err := run(context.Background(), c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cdc:", err)
		os.Exit(1)
	}
	if c.json {
		_ = json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	fmt.Printf("single-row txns: cairn %.0f changes/s, pg_recvlogical %.0f (ratio %.2f)\n", r.SingleRowCairn, r.SingleRowRecvlogical, r.SingleRowCairn/r.SingleRowRecvlogical)
	fmt.Printf("1,000-row txns:  cairn %.0f changes/s, pg_recvlogical %.0f (ratio %.2f)\n", r.BigTxnCairn, r.BigTxnRecvlogical, r.BigTxnCairn/r.BigTxnRecvlogical)
	fmt.Printf("commit to consumer: p50 %.1f ms, p99 %.1f ms\n", r.LatencyP50Ms, r.LatencyP99Ms)
	fmt.Printf("snapshot: cairn %.0f rows/s, COPY TO STDOUT %.0f (ratio %.2f)\n", r.SnapshotCairn, r.SnapshotCopy, r.SnapshotCairn/r.SnapshotCopy)
}

func run(ctx context.Context, c config) (Result, error) {
	var r Result
	db, err := pgx.Connect(ctx, c.dsn)
	if err != nil {
		return r, fmt.Errorf("connect: %w", err)
	}
	defer db.Close(context.Background())
	dropSlots(db) // a previous run's, interrupted
	srv, err := startCairn(c)
	if err != nil {
		return r, err
	}
	defer func() {
		srv.stop() // first: a slot in use cannot be dropped
		dropSlots(db)
	}()

	r.SingleRowChanges = c.singleTxns
	if r.SingleRowCairn, r.SingleRowRecvlogical, err = streaming(ctx, c, db, srv, "single", c.singleTxns, 1); err != nil {
		return r, fmt.Errorf("single-row transactions: %w", err)
	}
	r.BigTxnChanges = c.bigTxns * 1000
	if r.BigTxnCairn, r.BigTxnRecvlogical, err = streaming(ctx, c, db, srv, "big", c.bigTxns, 1000); err != nil {
		return r, fmt.Errorf("1,000-row transactions: %w", err)
	}
	r.LatencyTxns = c.latencyTxns
	if r.LatencyP50Ms, r.LatencyP99Ms, err = latency(ctx, c, db, srv); err != nil {
		return r, fmt.Errorf("latency: %w", err)
	}
	r.SnapshotRows = c.snapshotRows
	if r.SnapshotCairn, r.SnapshotCopy, err = snapshot(ctx, c, db, srv); err != nil {
		return r, fmt.Errorf("snapshot: %w", err)
	}
	return r, nil
}

// streaming commits txns transactions of rows rows while the connector is
// paused (its slot keeping them), then times pg_recvlogical reading them
// from a twin slot and the connector streaming them until PostgreSQL's
// confirmed position passes the last commit (every change durable).
func streaming(ctx context.Context, c config, db *pgx.Conn, srv *server, name string, txns, rows int) (cairnRate, refRate float64, err error) {
	table := "cdcbench_" + name
	if _, err := db.Exec(ctx, fmt.Sprintf(`DROP TABLE IF EXISTS %s; CREATE TABLE %s (id int PRIMARY KEY, v text)`, table, table)); err != nil {
		return 0, 0, err
	}
	conn := "bench_" + name
	if err := srv.create(conn, table, "never"); err != nil {
		return 0, 0, err
	}
	if _, err := srv.wait(c.timeout, conn, func(s status) bool { return s.State == "streaming" }); err != nil {
		return 0, 0, err
	}
	ref := "cdcbench_ref_" + name
	if _, err := db.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, ref); err != nil {
		return 0, 0, fmt.Errorf("reference slot: %w", err)
	}
	if err := srv.action(conn, "pause"); err != nil {
		return 0, 0, err
	}
	if _, err := srv.wait(c.timeout, conn, func(s status) bool { return s.State == "paused" }); err != nil {
		return 0, 0, err
	}
	// The connector confirms a transaction's commit position once it is
	// durable: past the WAL's end before the last transaction, it has
	// confirmed the last one.
	var beforeLast string
	for i := 0; i < txns; i++ {
		if i == txns-1 {
			if err := db.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&beforeLast); err != nil {
				return 0, 0, err
			}
		}
		if _, err := db.Exec(ctx, fmt.Sprintf(`INSERT INTO %s SELECT g, 'row ' || g FROM generate_series(%d, %d) g`, table, i*rows, (i+1)*rows-1)); err != nil {
			return 0, 0, err
		}
	}
	beforeLastLSN, err := parseLSN(beforeLast)
	if err != nil {
		return 0, 0, err
	}
	var end string
	if err := db.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&end); err != nil {
		return 0, 0, err
	}
	changes := float64(txns * rows)

	began := time.Now()
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cmd := exec.CommandContext(rctx, c.recvlogical, "-d", c.dsn, "--slot", ref, "--start", "--endpos", end, "--no-loop",
		"-o", "proto_version=1", "-o", "publication_names=cairn_"+conn, "-f", "/dev/null")
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("pg_recvlogical: %w: %s", err, out)
	}
	refRate = changes / time.Since(began).Seconds()

	prof := srv.profile(c, name)
	defer prof()
	began = time.Now()
	if err := srv.action(conn, "resume"); err != nil {
		return 0, 0, err
	}
	// Resumed, the connector counts its events afresh.
	if _, err := srv.wait(c.timeout, conn, func(s status) bool {
		lsn, err := parseLSN(s.Metrics.ConfirmedLSN)
		return err == nil && lsn > beforeLastLSN && s.Metrics.Events >= int64(txns*rows)
	}); err != nil {
		return 0, 0, err
	}
	cairnRate = changes / time.Since(began).Seconds()
	return cairnRate, refRate, nil
}

// latencyInterval is the pause between the latency run's commits.
const latencyInterval = 2 * time.Millisecond

// latency commits single-row transactions one every latencyInterval and
// measures, for each, the time from its COMMIT returning to a Kafka
// consumer of the topic receiving its change.
func latency(ctx context.Context, c config, db *pgx.Conn, srv *server) (p50, p99 float64, err error) {
	const table, conn = "cdcbench_lat", "bench_lat"
	if _, err := db.Exec(ctx, fmt.Sprintf(`DROP TABLE IF EXISTS %s; CREATE TABLE %s (id int PRIMARY KEY)`, table, table)); err != nil {
		return 0, 0, err
	}
	if err := srv.create(conn, table, "never"); err != nil {
		return 0, 0, err
	}
	if _, err := srv.wait(c.timeout, conn, func(s status) bool { return s.State == "streaming" }); err != nil {
		return 0, 0, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.kafkaAddr), kgo.ConsumeTopics(conn+".public."+table),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	received := make(chan map[int]time.Time, 1)
	pctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	// Row 0 warms the consumer up (topic found, first fetch done); rows 1..n
	// are measured.
	go func() {
		got := map[int]time.Time{}
		for len(got) < c.latencyTxns+1 && pctx.Err() == nil {
			fs := cl.PollFetches(pctx)
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				var k struct{ ID int }
				if json.Unmarshal(r.Key, &k) == nil && r.Value != nil {
					got[k.ID] = now
				}
			})
		}
		received <- got
	}()
	committed := make([]time.Time, c.latencyTxns+1)
	if _, err := db.Exec(ctx, fmt.Sprintf(`INSERT INTO %s VALUES (0)`, table)); err != nil {
		return 0, 0, err
	}
	time.Sleep(2 * time.Second) // the consumer finds the topic and catches up
	for i := 1; i <= c.latencyTxns; i++ {
		if _, err := db.Exec(ctx, fmt.Sprintf(`INSERT INTO %s VALUES (%d)`, table, i)); err != nil {
			return 0, 0, err
		}
		committed[i] = time.Now()
		time.Sleep(latencyInterval)
	}
	got := <-received
	var ms []float64
	for i := 1; i <= c.latencyTxns; i++ {
		at, ok := got[i]
		if !ok {
			return 0, 0, fmt.Errorf("row %d not received within %s (%d rows received)", i, c.timeout, len(got))
		}
		ms = append(ms, float64(at.Sub(committed[i]).Microseconds())/1000)
	}
	slices.Sort(ms)
	return ms[len(ms)/2], ms[len(ms)*99/100], nil
}

// snapshot times COPY ... TO STDOUT of a table, then a new connector's
// initial snapshot of it until its status says the table is done (every
// chunk durable).
func snapshot(ctx context.Context, c config, db *pgx.Conn, srv *server) (cairnRate, copyRate float64, err error) {
	const table, conn = "cdcbench_snap", "bench_snap"
	if _, err := db.Exec(ctx, fmt.Sprintf(`DROP TABLE IF EXISTS %s; CREATE TABLE %s (id int PRIMARY KEY, v text);
		INSERT INTO %s SELECT g, 'row ' || g FROM generate_series(1, %d) g`, table, table, table, c.snapshotRows)); err != nil {
		return 0, 0, err
	}
	// Both readers then find the table's pages set visible and hinted.
	if _, err := db.Exec(ctx, "VACUUM ANALYZE "+table); err != nil {
		return 0, 0, err
	}
	began := time.Now()
	if _, err := db.PgConn().CopyTo(ctx, io.Discard, "COPY "+table+" TO STDOUT"); err != nil {
		return 0, 0, err
	}
	copyRate = float64(c.snapshotRows) / time.Since(began).Seconds()
	prof := srv.profile(c, "snapshot")
	defer prof()
	began = time.Now()
	if err := srv.create(conn, table, "initial"); err != nil {
		return 0, 0, err
	}
	s, err := srv.wait(c.timeout, conn, func(s status) bool { return s.Metrics.SnapshotTablesDone == 1 })
	if err != nil {
		return 0, 0, err
	}
	if s.Metrics.SnapshotRows != int64(c.snapshotRows) {
		return 0, 0, fmt.Errorf("the snapshot read %d rows, want %d", s.Metrics.SnapshotRows, c.snapshotRows)
	}
	cairnRate = float64(c.snapshotRows) / time.Since(began).Seconds()
	return cairnRate, copyRate, nil
}

// profile starts fetching cairn serve's CPU profile for c.profileFor into
// c.cpuProfile/<name>.pprof (nothing without --cpuprofile) and returns the
// wait for it, which the run calls after its timing.
func (s *server) profile(c config, name string) (wait func()) {
	if c.cpuProfile == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.httpAddr, int(c.profileFor.Seconds()))
		resp, err := http.Get(url)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cdc: profile:", err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(filepath.Join(c.cpuProfile, name+".pprof"))
		if err == nil {
			_, err = io.Copy(f, resp.Body)
			err = errors.Join(err, f.Close())
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "cdc: profile:", err)
		}
	}()
	return func() { <-done }
}

// dropSlots drops the slots and publications of the run: a publication
// left behind would keep naming tables the next run drops and recreates,
// and so capture nothing.
func dropSlots(db *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = db.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'cdcbench_ref_%' OR slot_name LIKE 'cairn_bench_%'`)
	rows, err := db.Query(ctx, `SELECT pubname FROM pg_publication WHERE pubname LIKE 'cairn_bench_%'`)
	if err != nil {
		return
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, n := range names {
		_, _ = db.Exec(ctx, "DROP PUBLICATION "+pgx.Identifier{n}.Sanitize())
	}
}

// parseLSN reads PostgreSQL's X/Y text of a WAL position.
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("LSN %q", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("LSN %q: %w", s, err)
	}
	return h<<32 | l, nil
}

// server is the `cairn serve` process the connectors run in.
type server struct {
	cmd                 *exec.Cmd
	kafkaAddr, httpAddr string
}

func startCairn(c config) (*server, error) {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, err
	}
	s := &server{kafkaAddr: freeAddr(), httpAddr: freeAddr()}
	log, err := os.Create(filepath.Join(c.dir, "serve.log"))
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(c.cairn, "serve", "--data-dir", filepath.Join(c.dir, "data"), "--kafka-addr", s.kafkaAddr, "--http-addr", s.httpAddr)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start cairn: %w", err)
	}
	for i := 0; i < 400; i++ {
		if resp, err := http.Get("http://" + s.httpAddr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stop()
	return nil, errors.New("cairn serve not healthy after 20 s")
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type status struct {
	State   string `json:"state"`
	Error   string `json:"error"`
	Metrics struct {
		ConfirmedLSN       string `json:"confirmed_lsn"`
		Events             int64  `json:"events"`
		SnapshotTablesDone int    `json:"snapshot_tables_done"`
		SnapshotRows       int64  `json:"snapshot_rows"`
	} `json:"metrics"`
}

func (s *server) create(name, table, snapshotMode string) error {
	def, _ := json.Marshal(map[string]any{"name": name, "type": "postgres", "dsn": flag.Lookup("dsn").Value.String(),
		"tables": []string{"public." + table}, "snapshot_mode": snapshotMode})
	return s.post("/v1/connectors", def)
}

func (s *server) action(name, action string) error {
	return s.post("/v1/connectors/"+name+"/"+action, nil)
}

func (s *server) post(path string, body []byte) error {
	resp, err := http.Post("http://"+s.httpAddr+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("POST %s: %s %s", path, resp.Status, b)
	}
	return nil
}

// wait polls a connector's status every millisecond until ok holds.
func (s *server) wait(timeout time.Duration, name string, ok func(status) bool) (status, error) {
	deadline := time.Now().Add(timeout)
	var last status
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + s.httpAddr + "/v1/connectors/" + name)
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&last)
			resp.Body.Close()
			if err == nil && last.State == "failed" {
				return last, fmt.Errorf("connector %s failed: %s", name, last.Error)
			}
			if err == nil && ok(last) {
				return last, nil
			}
		}
		time.Sleep(time.Millisecond)
	}
	return last, fmt.Errorf("connector %s: not there after %s (state %s)", name, timeout, last.State)
}
