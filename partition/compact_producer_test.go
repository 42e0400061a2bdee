package partition

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"testing"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
)

// keyedIdempotent builds an idempotent producer's batch with one record per key.
func keyedIdempotent(t *testing.T, pid int64, seq int32, keys ...string) []byte {
	t.Helper()
	recs := make([]batch.Record, len(keys))
	for i, k := range keys {
		recs[i] = batch.Record{Offset: int64(i), TimestampMs: time.Now().UnixMilli(), Key: []byte(k),
			Value: []byte(fmt.Sprintf("p%d-%d", pid, int(seq)+i))}
	}
	b, err := batch.Encode(batch.Header{ProducerID: pid, ProducerEpoch: 0, BaseSequence: seq}, int32(len(keys)-1), recs, batch.None)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCompactionKeepsProducerState: a producer whose batches compaction
// shrank (its first) and emptied (its last) can go on with its next
// sequence after producer state was rebuilt from the compacted log, and a
// retry of its last batch is still answered with the original offsets.
func TestCompactionKeepsProducerState(t *testing.T) {
	fsys := vfs.NewMem()
	compacted := func(c *Config) {
		c.Compact, c.DeleteSegments = true, false
		c.Storage.SegmentBytes = 200
	}
	p := open(t, fsys, compacted)
	const pid = 7
	appendDurable(t, p, keyedIdempotent(t, pid, 0, "a", "b", "c")) // offsets 0-2; only c survives
	last := appendDurable(t, p, keyedIdempotent(t, pid, 3, "a", "b"))
	if last.BaseOffset != 3 || last.LastOffset != 4 {
		t.Fatalf("second batch at [%d, %d], want [3, 4]", last.BaseOffset, last.LastOffset)
	}
	// A plain producer overwrites a and b, then fills segments so that the
	// idempotent producer's batches are sealed and compactable.
	appendDurable(t, p, batch.Build([]batch.Record{{Key: []byte("a")}, {Key: []byte("b")}}, batch.None))
	for i := 0; i < 20 && len(p.log.Segments()) < 3; i++ {
		appendDurable(t, p, batch.Build([]batch.Record{{Key: []byte("z"), Value: []byte(fmt.Sprint(i))}}, batch.None))
	}
	if len(p.log.Segments()) < 3 {
		t.Fatalf("%d segments, want at least 3", len(p.log.Segments()))
	}
	if err := p.Clean(time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// Without a snapshot, producer state is rebuilt from the compacted log,
	// as after a crash before the first snapshot.
	if err := fsys.Remove(path.Join("/data/t-0", producerStateFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	p = open(t, fsys, compacted)
	defer p.Close()
	if got := readValues(t, p, 0)[0]; got != "p7-2" {
		t.Fatalf("first value after compaction %q, want p7-2", got)
	}
	retry, err := p.Append(keyedIdempotent(t, pid, 3, "a", "b"))
	if err != nil {
		t.Fatalf("retry of the producer's last batch: %v", err)
	}
	if !retry.Duplicate || retry.BaseOffset != 3 || retry.LastOffset != 4 {
		t.Fatalf("retry answered %+v, want the duplicate at [3, 4]", retry)
	}
	if _, err := p.Append(keyedIdempotent(t, pid, 5, "d")); err != nil {
		t.Fatalf("next sequence after compaction and rebuild: %v", err)
	}
}

// TestCompactBatchesKeepsProducersLastBatch: of a producer's batches that
// lose every record, only its last stays, empty, with its base offset, base
// sequence and last offset delta; once the producer has a later batch, the
// next pass removes the empty one.
func TestCompactBatchesKeepsProducersLastBatch(t *testing.T) {
	lim := batch.DefaultLimits()
	encode := func(base int64, seq int32, recs ...batch.Record) []byte {
		t.Helper()
		b, err := batch.Encode(batch.Header{BaseOffset: base, ProducerID: 4, ProducerEpoch: 2, BaseSequence: seq, MaxTimestamp: 100},
			int32(len(recs)-1), recs, batch.Gzip)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	segment := append(encode(10, 0, rec(10, "a", "1", 100), rec(11, "b", "1", 100)),
		encode(12, 2, rec(12, "a", "2", 100), rec(13, "b", "2", 100))...)
	latest := map[string]int64{"a": 20, "b": 21} // both keys rewritten later

	kept, changed, err := compactBatches(segment, compactPlan{latest: latest, producerLast: map[int64]int64{4: 13}}, 1000, 10_000, lim)
	if err != nil || !changed {
		t.Fatalf("changed %v err %v", changed, err)
	}
	h, _, rest, err := batch.Next(kept)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) != 0 || h.BaseOffset != 12 || h.LastOffsetDelta != 1 || h.BaseSequence != 2 ||
		h.ProducerID != 4 || h.ProducerEpoch != 2 || h.NumRecords != 0 || h.Codec() != batch.None {
		t.Fatalf("kept %d more bytes after header %+v; want only the last batch, empty, as it was", len(rest), h)
	}
	if again, changed, err := compactBatches(kept, compactPlan{latest: latest, producerLast: map[int64]int64{4: 13}}, 1000, 10_000, lim); err != nil || changed || len(again) != len(kept) {
		t.Fatalf("second pass: changed %v err %v", changed, err)
	}
	if again, changed, err := compactBatches(kept, compactPlan{latest: latest, producerLast: map[int64]int64{4: 30}}, 1000, 10_000, lim); err != nil || !changed || len(again) != 0 {
		t.Fatalf("after the producer moved on: %d bytes kept, changed %v, err %v; want none", len(again), changed, err)
	}
}

// TestOffsetForTimestampPastEmptiedBatch: an emptied producer batch keeps
// its max timestamp, so the time index may lead a timestamp lookup to it;
// the lookup goes on to the record that does reach the timestamp.
func TestOffsetForTimestampPastEmptiedBatch(t *testing.T) {
	p := open(t, vfs.NewMem(), func(c *Config) {
		c.Compact, c.DeleteSegments = true, false
		c.Storage.SegmentBytes = 200
	})
	defer p.Close()
	ts := time.Now().UnixMilli()
	emptied, err := batch.Encode(batch.Header{ProducerID: 7, BaseSequence: 0}, 0,
		[]batch.Record{{TimestampMs: ts, Key: []byte("a"), Value: []byte("old")}}, batch.None)
	if err != nil {
		t.Fatal(err)
	}
	// Offset 0 is producer 7's last batch; offset 1 overwrites its key a.
	appendDurable(t, p, emptied)
	for i := 0; i < 20 && len(p.log.Segments()) < 3; i++ {
		key := fmt.Sprintf("k%d", i)
		if i == 0 {
			key = "a"
		}
		appendDurable(t, p, batch.Build([]batch.Record{{TimestampMs: ts + 1 + int64(i), Key: []byte(key), Value: []byte(fmt.Sprint(i))}}, batch.None))
	}
	if err := p.Clean(ts); err != nil {
		t.Fatal(err)
	}
	if res, err := p.Read(0, 1); err != nil || len(res.Records) < batch.HeaderBytes {
		t.Fatalf("read at 0: %v", err)
	} else if h, _ := batch.ParseHeader(res.Records); h.NumRecords != 0 || h.MaxTimestamp != ts {
		t.Fatalf("batch at 0 after compaction %+v, want the producer's batch, empty, with its max timestamp", h)
	}
	offset, got, err := p.OffsetForTimestamp(ts)
	if err != nil || offset != 1 || got != ts+1 {
		t.Fatalf("offset for timestamp %d: offset %d timestamp %d err %v, want offset 1 at %d", ts, offset, got, err, ts+1)
	}
}

// TestReplayProducersPastACleanedTail: producer state is replayed from
// its snapshot to the log end at open, and a cleaner may have removed
// every batch in between (a replica's later records, which replaced
// them, lost in a crash before it synced them: TestSimulatedClusterCompacted
// seed 5031 left the replica offline with "no batch at offset 276 below
// log end 294"). Nothing is left to replay there, which is no error.
func TestReplayProducersPastACleanedTail(t *testing.T) {
	p := open(t, vfs.NewMem(), func(c *Config) {
		c.Compact, c.DeleteSegments = true, false
		c.Storage.SegmentBytes = 200
	})
	defer p.Close()
	for i := 0; i < 40 && len(p.log.Segments()) < 3; i++ {
		appendDurable(t, p, keyedIdempotent(t, 9, int32(i), "a"))
	}
	segs := p.log.Segments()
	if len(segs) < 3 {
		t.Fatalf("%d segments, want at least 3", len(segs))
	}
	cleaned := segs[1] // sealed, followed by another segment
	if err := p.log.ReplaceSegment(cleaned.BaseOffset, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.replayProducers(cleaned.BaseOffset, cleaned.NextOffset, time.Now().UnixMilli()); err != nil {
		t.Fatalf("replay over [%d, %d), emptied by a cleaner: %v", cleaned.BaseOffset, cleaned.NextOffset, err)
	}
}
