package partition

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage"
	"github.com/cairnlog/cairn/storage/vfs"
)

// TestSegmentsToDelete covers retention by time and size, and the rule that
// nothing above the high watermark is deleted.
func TestSegmentsToDelete(t *testing.T) {
	segs := []storage.SegmentInfo{
		{BaseOffset: 0, NextOffset: 10, SizeBytes: 100, MaxTimestampMs: 1000},
		{BaseOffset: 10, NextOffset: 20, SizeBytes: 100, MaxTimestampMs: 2000},
		{BaseOffset: 20, NextOffset: 30, SizeBytes: 100, MaxTimestampMs: 3000, Active: true},
	}
	base := DefaultConfig()
	cases := []struct {
		name     string
		retMs    int64
		retBytes int64
		nowMs    int64
		hwm      int64
		want     int
	}{
		{"nothing expired", 5000, -1, 4000, 30, 0},
		{"oldest expired", 2500, -1, 4000, 30, 1},
		{"all expired, active too", 500, -1, 4000, 30, 3},
		{"expired but above the high watermark", 500, -1, 4000, 15, 1},
		{"size over by one segment", -1, 200, 0, 30, 1},
		{"size under", -1, 300, 0, 30, 0},
		{"infinite", -1, -1, 1 << 40, 30, 0},
	}
	for _, c := range cases {
		cfg := base
		cfg.RetentionMs, cfg.RetentionBytes = c.retMs, c.retBytes
		if got := segmentsToDelete(segs, cfg, c.nowMs, c.hwm); got != c.want {
			t.Errorf("%s: %d segments, want %d", c.name, got, c.want)
		}
	}
}

func rec(offset int64, key, value string, ts int64) batch.Record {
	r := batch.Record{Offset: offset, TimestampMs: ts, Key: []byte(key)}
	if value != "" {
		r.Value = []byte(value)
	}
	return r
}

// TestCompactBatches: the newest record per key survives, a batch that keeps
// everything is untouched, an emptied batch disappears, and tombstones go
// only after delete.retention.ms.
func TestCompactBatches(t *testing.T) {
	lim := batch.DefaultLimits()
	b1, err := batch.Encode(batch.Header{ProducerID: -1, BaseSequence: -1}, 2,
		[]batch.Record{rec(0, "a", "1", 100), rec(1, "b", "1", 100), rec(2, "a", "2", 100)}, batch.Gzip)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := batch.Encode(batch.Header{BaseOffset: 3, ProducerID: -1, BaseSequence: -1}, 1,
		[]batch.Record{rec(3, "b", "", 200), rec(4, "c", "1", 200)}, batch.None)
	if err != nil {
		t.Fatal(err)
	}
	b3, err := batch.Encode(batch.Header{BaseOffset: 5, ProducerID: -1, BaseSequence: -1}, 0,
		[]batch.Record{rec(5, "d", "", 300)}, batch.None)
	if err != nil {
		t.Fatal(err)
	}
	segment := append(append(append([]byte{}, b1...), b2...), b3...)
	latest := map[string]int64{"a": 2, "b": 3, "c": 4, "d": 5}

	kept, changed, err := compactBatches(segment, compactPlan{latest: latest}, 1000, 10_000, lim)
	if err != nil || !changed {
		t.Fatalf("changed %v err %v", changed, err)
	}
	got := offsetsOf(t, kept)
	want := []int64{2, 3, 4, 5}
	if !equal(got, want) {
		t.Fatalf("kept offsets %v, want %v", got, want)
	}
	// Past the grace period the tombstones for b and d go; d's batch empties.
	kept, _, err = compactBatches(segment, compactPlan{latest: latest}, 100_000, 10_000, lim)
	if err != nil {
		t.Fatal(err)
	}
	if got := offsetsOf(t, kept); !equal(got, []int64{2, 4}) {
		t.Fatalf("after grace period kept %v", got)
	}
	// A second pass over compacted data changes nothing.
	if _, changed, _ := compactBatches(kept, compactPlan{latest: latest}, 100_000, 10_000, lim); changed {
		t.Fatal("compacting compacted data changed it")
	}
}

func offsetsOf(t *testing.T, data []byte) []int64 {
	t.Helper()
	var out []int64
	eachRecord(t, data, func(r batch.Record) { out = append(out, r.Offset) })
	return out
}

// eachRecord calls fn with every record of the batches in data and returns
// the offset after the last batch.
func eachRecord(t *testing.T, data []byte, fn func(batch.Record)) int64 {
	t.Helper()
	next := int64(-1)
	for len(data) > 0 {
		h, whole, rest, err := batch.Next(data)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := batch.Records(whole, batch.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			fn(r)
		}
		next, data = h.NextOffset(), rest
	}
	return next
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCleanerYieldsToAnInstall: a cleaner pass replaces nothing once a
// snapshot install began after it read its plan and segments: the install
// puts the leader's segments in their place, perhaps at the same base
// offsets, and the pass's output would overwrite committed records it
// never saw. The next pass cleans.
func TestCleanerYieldsToAnInstall(t *testing.T) {
	p := open(t, vfs.NewMem(), func(c *Config) {
		c.Compact, c.DeleteSegments = true, false
		c.Storage.SegmentBytes = 200
	})
	defer p.Close()
	for i := range 30 {
		key := fmt.Sprintf("k%d", i%3)
		appendDurable(t, p, batch.Build([]batch.Record{{TimestampMs: time.Now().UnixMilli(), Key: []byte(key), Value: []byte(fmt.Sprint(i))}}, batch.None))
	}
	seg := p.log.Segments()[0]
	before, err := p.log.ReadSegment(seg.BaseOffset)
	if err != nil {
		t.Fatal(err)
	}
	installs := p.installsBegun()
	p.mu.Lock()
	p.installs++ // as snapshotInstaller.ApplySnapshot does
	p.mu.Unlock()
	replaced, err := p.replaceSegment(seg, nil, installs)
	if err != nil || replaced {
		t.Fatalf("replaceSegment after an install began: replaced %v, %v; want nothing replaced", replaced, err)
	}
	if after, err := p.log.ReadSegment(seg.BaseOffset); err != nil || !bytes.Equal(after, before) {
		t.Fatalf("segment %d after the refused replacement: %d bytes (%v), want its %d unchanged", seg.BaseOffset, len(after), err, len(before))
	}
	size := p.SizeBytes()
	if err := p.Clean(time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if p.SizeBytes() >= size {
		t.Fatalf("the next pass reclaimed nothing: %d -> %d", size, p.SizeBytes())
	}
}

// TestAbortedIndexYieldsToAnInstall: a cleaner pass drops no entry of the
// aborted index once a snapshot install began after it read the segments:
// the installed ones may still hold the transaction's records and marker,
// which a read_committed reader, finding no entry, would take as committed.
func TestAbortedIndexYieldsToAnInstall(t *testing.T) {
	p := open(t, vfs.NewMem(), func(c *Config) { c.Compact, c.DeleteSegments = true, false })
	defer p.Close()
	begin(t, p, 1, 0)
	appendTxn(t, p, txnBatch(t, 1, 0, 0, 2, "k"))
	marker := endTxn(t, p, 1, 0, false)
	if got := p.AbortedTransactions(0, p.HighWatermark()); len(got) != 1 {
		t.Fatalf("aborted index %v, want the one transaction", got)
	}
	installs := p.installsBegun()
	p.mu.Lock()
	p.installs++ // as snapshotInstaller.ApplySnapshot does
	p.mu.Unlock()
	if err := p.dropAborted(map[int64]bool{marker.BaseOffset: true}, installs); err != nil {
		t.Fatal(err)
	}
	if got := p.AbortedTransactions(0, p.HighWatermark()); len(got) != 1 {
		t.Fatalf("aborted index %v after an install began, want the entry kept", got)
	}
	if err := p.dropAborted(map[int64]bool{marker.BaseOffset: true}, p.installsBegun()); err != nil {
		t.Fatal(err)
	}
	if got := p.AbortedTransactions(0, p.HighWatermark()); len(got) != 0 {
		t.Fatalf("aborted index %v, want the entry dropped by a pass that read the current segments", got)
	}
}
