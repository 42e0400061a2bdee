package partition

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/storage/vfs"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testEnv is the real environment on fsys, logging nothing.
func testEnv(fsys vfs.FS) env.Env {
	e := env.Real()
	e.FS, e.Logger = fsys, quiet
	return e
}

func open(t *testing.T, fsys vfs.FS, edit ...func(*Config)) *Partition {
	t.Helper()
	return openEnv(t, testEnv(fsys), edit...)
}

// openAsOneVoter makes openEnv open a replicated partition, the only voter
// of its group (TestReplicatedOneVoterRunsSingleWriterBodies).
var openAsOneVoter bool

func openEnv(t *testing.T, e env.Env, edit ...func(*Config)) *Partition {
	t.Helper()
	cfg := DefaultConfig()
	for _, edit := range edit {
		edit(&cfg)
	}
	if openAsOneVoter {
		return openOneVoterEnv(t, e, cfg)
	}
	p, err := Open(e, "/data/t-0", "t", 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// produce builds a batch as a producer would: n records, keys k<i>.
func produce(t *testing.T, n int, value string) []byte {
	t.Helper()
	recs := make([]batch.Record, n)
	now := time.Now().UnixMilli()
	for i := range recs {
		recs[i] = batch.Record{Offset: int64(i), TimestampMs: now + int64(i),
			Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf("%s-%d", value, i))}
	}
	return batch.Build(recs, batch.None)
}

func idempotent(t *testing.T, pid int64, epoch int16, seq int32, n int) []byte {
	t.Helper()
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = batch.Record{Offset: int64(i), TimestampMs: 5, Value: []byte(fmt.Sprintf("p%d-%d", pid, int(seq)+i))}
	}
	b, err := batch.Encode(batch.Header{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq}, int32(n-1), recs, batch.None)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func appendDurable(t *testing.T, p *Partition, records []byte) AppendResult {
	t.Helper()
	res, err := p.Append(records)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.WaitDurable(ctx, res.LastOffset); err != nil {
		t.Fatal(err)
	}
	return res
}

func readValues(t *testing.T, p *Partition, from int64) []string {
	t.Helper()
	var out []string
	for from < p.HighWatermark() {
		res, err := p.Read(from, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		start := from
		from = eachRecord(t, res.Records, func(r batch.Record) {
			if r.Offset >= start {
				out = append(out, string(r.Value))
			}
		})
	}
	return out
}

// TestAppendReadRestart: offsets are assigned contiguously, reads return the
// records, and a clean restart keeps data, producer state and bumps the epoch.
func TestAppendReadRestart(t *testing.T) {
	fsys := vfs.NewMem()
	p := open(t, fsys)
	if got := p.LeaderEpoch(); got != 0 {
		t.Fatalf("first epoch %d", got)
	}
	r1 := appendDurable(t, p, produce(t, 3, "a"))
	r2 := appendDurable(t, p, produce(t, 2, "b"))
	if r1.BaseOffset != 0 || r1.LastOffset != 2 || r2.BaseOffset != 3 || r2.LastOffset != 4 {
		t.Fatalf("offsets %+v %+v", r1, r2)
	}
	if hw := p.HighWatermark(); hw != 5 {
		t.Fatalf("high watermark %d", hw)
	}
	if got := readValues(t, p, 1); fmt.Sprint(got) != "[a-1 a-2 b-0 b-1]" {
		t.Fatalf("read %v", got)
	}
	r3 := appendDurable(t, p, idempotent(t, 42, 0, 0, 2))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	p = open(t, fsys)
	defer p.Close()
	if got := p.LeaderEpoch(); got != 1 {
		t.Fatalf("epoch after restart %d", got)
	}
	if e, end := p.EndOffsetForEpoch(0); e != 0 || end != 7 {
		t.Fatalf("end of epoch 0: (%d, %d)", e, end)
	}
	if got := readValues(t, p, 0); len(got) != 7 {
		t.Fatalf("after restart read %v", got)
	}
	dup, err := p.Append(idempotent(t, 42, 0, 0, 2))
	if err != nil || !dup.Duplicate || dup.BaseOffset != r3.BaseOffset {
		t.Fatalf("retry after restart: %+v %v", dup, err)
	}
	if _, err := p.Append(idempotent(t, 42, 0, 5, 1)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("gap after restart: %v", err)
	}
	if _, err := p.Read(8, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read past the end: %v", err)
	}
}

// TestAppendRejectsBadInput: nothing of a refused batch is written.
func TestAppendRejectsBadInput(t *testing.T) {
	p := open(t, vfs.NewMem(), func(c *Config) { c.MessageBytesMax = 200 })
	defer p.Close()
	good := produce(t, 1, "x")
	corrupt := append([]byte{}, good...)
	corrupt[len(corrupt)-1] ^= 0xff
	big := produce(t, 50, "big")
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrInvalidRecord},
		{"bad crc", corrupt, ErrCorruptMessage},
		{"truncated", good[:len(good)-3], ErrCorruptMessage},
		{"too large", big, ErrMessageTooLarge},
	}
	for _, c := range cases {
		if _, err := p.Append(c.data); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if end := p.LogEndOffset(); end != 0 {
		t.Fatalf("refused batches were written: log end %d", end)
	}
}

// TestCompactedTopicNeedsKeys: Kafka refuses null keys on compacted topics.
func TestCompactedTopicNeedsKeys(t *testing.T) {
	p := open(t, vfs.NewMem(), func(c *Config) { c.Compact, c.DeleteSegments = true, false })
	defer p.Close()
	if _, err := p.Append(batch.Build([]batch.Record{{Value: []byte("v")}}, batch.None)); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("null key accepted: %v", err)
	}
}

// TestLogAppendTime: the broker's clock replaces producer timestamps.
func TestLogAppendTime(t *testing.T) {
	p := open(t, vfs.NewMem(), func(c *Config) { c.LogAppendTime = true })
	defer p.Close()
	before := time.Now().UnixMilli()
	res := appendDurable(t, p, produce(t, 2, "x"))
	if res.LogAppendTimeMs < before {
		t.Fatalf("log append time %d before %d", res.LogAppendTimeMs, before)
	}
	off, ts, err := p.OffsetForTimestamp(before)
	if err != nil || off != 0 || ts != res.LogAppendTimeMs {
		t.Fatalf("offset for time: %d %d %v", off, ts, err)
	}
}

// TestTimestampsLookups: ListOffsets by time and max timestamp.
func TestTimestampsLookups(t *testing.T) {
	p := open(t, vfs.NewMem())
	defer p.Close()
	for i := 0; i < 4; i++ {
		recs := []batch.Record{{TimestampMs: int64(100 * (i + 1)), Value: []byte("v")}, {Offset: 1, TimestampMs: int64(100*(i+1) + 50), Value: []byte("w")}}
		if i == 2 {
			recs[1].TimestampMs = 9999
		}
		appendDurable(t, p, batch.Build(recs, batch.None))
	}
	cases := []struct{ ts, off, gotTs int64 }{{0, 0, 100}, {150, 1, 150}, {151, 2, 200}, {400, 5, 9999}, {10000, -1, -1}}
	for _, c := range cases {
		off, ts, err := p.OffsetForTimestamp(c.ts)
		if err != nil || off != c.off || ts != c.gotTs {
			t.Errorf("ts %d: (%d, %d, %v), want (%d, %d)", c.ts, off, ts, err, c.off, c.gotTs)
		}
	}
	if off, ts, err := p.MaxTimestamp(); err != nil || off != 5 || ts != 9999 {
		t.Fatalf("max timestamp: %d %d %v", off, ts, err)
	}
}

// TestDeleteRecordsAndRetention: the log start advances and reads below it fail.
func TestDeleteRecordsAndRetention(t *testing.T) {
	p := open(t, vfs.NewMem(), func(c *Config) { c.Storage.SegmentBytes = 300; c.RetentionBytes = 600 })
	defer p.Close()
	for i := 0; i < 20; i++ {
		appendDurable(t, p, produce(t, 1, fmt.Sprintf("r%d", i)))
	}
	low, err := p.DeleteRecordsBefore(context.Background(), 3)
	if err != nil || low != 3 || p.LogStartOffset() != 3 {
		t.Fatalf("delete records: %d %v", low, err)
	}
	if _, err := p.Read(2, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below log start: %v", err)
	}
	if _, err := p.DeleteRecordsBefore(context.Background(), 21); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("delete past high watermark: %v", err)
	}
	if err := p.Clean(time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if p.SizeBytes() > 900 || p.LogStartOffset() <= 3 {
		t.Fatalf("retention.bytes not applied: size %d start %d", p.SizeBytes(), p.LogStartOffset())
	}
	vals := readValues(t, p, p.LogStartOffset())
	if vals[len(vals)-1] != "r19-0" {
		t.Fatalf("newest record lost: %v", vals)
	}
}

// TestCompaction: after cleaning, a key's older records are gone from sealed
// segments and the newest survive, readable at their original offsets.
func TestCompaction(t *testing.T) {
	p := open(t, vfs.NewMem(), func(c *Config) {
		c.Compact, c.DeleteSegments = true, false
		c.Storage.SegmentBytes = 200
	})
	defer p.Close()
	for i := 0; i < 30; i++ {
		key := fmt.Sprintf("k%d", i%3)
		appendDurable(t, p, batch.Build([]batch.Record{{TimestampMs: time.Now().UnixMilli(), Key: []byte(key), Value: []byte(fmt.Sprint(i))}}, batch.None))
	}
	before := p.SizeBytes()
	if err := p.Clean(time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if p.SizeBytes() >= before {
		t.Fatalf("compaction reclaimed nothing: %d -> %d", before, p.SizeBytes())
	}
	vals := readValues(t, p, 0)
	last := vals[len(vals)-3:]
	if fmt.Sprint(last) != "[27 28 29]" {
		t.Fatalf("newest values %v (all %v)", last, vals)
	}
	if len(vals) >= 30 {
		t.Fatalf("nothing removed: %v", vals)
	}
}

// TestFailedSyncFailsPartition: a failed fsync is never retried and trusted;
// the waiting produce gets an error and the partition stays offline.
func TestFailedSyncFailsPartition(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	p := open(t, efs)
	defer p.Close()
	appendDurable(t, p, produce(t, 1, "ok"))
	efs.Inject(vfs.Rule{Op: vfs.OpSync, PathContains: ".log", Err: syscall.EIO})
	res, err := p.Append(produce(t, 1, "lost"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.WaitDurable(ctx, res.LastOffset); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("wait after failed sync: %v", err)
	}
	if _, err := p.Append(produce(t, 1, "more")); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("append after failed sync: %v", err)
	}
	if _, err := p.Read(0, 100); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("read of failed partition: %v", err)
	}
	if p.HighWatermark() != 1 {
		t.Fatalf("high watermark moved past the failed sync: %d", p.HighWatermark())
	}
}

// TestDiskFull: ENOSPC refuses the produce with a clear error, reads go on,
// and writes resume when space returns.
func TestDiskFull(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	p := open(t, efs)
	defer p.Close()
	appendDurable(t, p, produce(t, 2, "before"))
	remove := efs.Inject(vfs.Rule{Op: vfs.OpWrite, PathContains: ".log", Err: syscall.ENOSPC})
	if _, err := p.Append(produce(t, 1, "full")); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("append on a full disk: %v", err)
	}
	if got := readValues(t, p, 0); len(got) != 2 {
		t.Fatalf("reads on a full disk: %v", got)
	}
	remove()
	res := appendDurable(t, p, produce(t, 1, "after"))
	if res.BaseOffset != 2 {
		t.Fatalf("offset after space returned: %d", res.BaseOffset)
	}
	if got := readValues(t, p, 0); fmt.Sprint(got) != "[before-0 before-1 after-0]" {
		t.Fatalf("log after disk full: %v", got)
	}
}

// TestCrashKeepsAcknowledged: with a simulated power cut at random points,
// every batch acknowledged (WaitDurable returned nil) survives recovery, and
// the recovered log is a contiguous prefix of what was appended.
func TestCrashKeepsAcknowledged(t *testing.T) {
	for seed := int64(0); seed < 30; seed++ {
		rng := rand.New(rand.NewPCG(uint64(seed), 0))
		cfs := vfs.NewCrashFS()
		p := open(t, cfs, func(c *Config) { c.Storage.SegmentBytes = 1000; c.CheckpointIntervalMs = 1 })
		acked := 0
		appended := 0
		n := 5 + rng.IntN(40)
		for i := 0; i < n; i++ {
			res, err := p.Append(produce(t, 1, fmt.Sprintf("v%d", i)))
			if err != nil {
				t.Fatal(err)
			}
			appended++
			if rng.IntN(3) == 0 {
				if err := p.WaitDurable(context.Background(), res.LastOffset); err != nil {
					t.Fatal(err)
				}
				acked = appended
			}
		}
		crashed := cfs.Crash(vfs.CrashOptions{Rand: rng, TearUnsynced: true})
		_ = p.Close() // the old process is gone; its files are not looked at again
		p2 := open(t, crashed)
		vals := readValues(t, p2, 0)
		if len(vals) < acked || len(vals) > appended {
			t.Fatalf("seed %d: recovered %d records, acknowledged %d, appended %d", seed, len(vals), acked, appended)
		}
		for i, v := range vals {
			if v != fmt.Sprintf("v%d-0", i) {
				t.Fatalf("seed %d: record %d is %q", seed, i, v)
			}
		}
		_ = p2.Close()
	}
}
