package storage

import (
	"bytes"
	"testing"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
)

// TestEmptyBatchAfterCompaction proves the empty batch compaction leaves in
// place of a producer's last batch (no records, codec none) is read like any
// other, indexed, and found again when a reopen rebuilds a sealed segment's
// indexes by scanning it.
func TestEmptyBatchAfterCompaction(t *testing.T) {
	filesystems(t, func(t *testing.T, fsys vfs.FS, dir string) {
		l := mustOpen(t, fsys, dir, testConfig(), 0)
		appendN(t, l, 30, 2, 100, 0)
		segment := l.Segments()[1]
		content, err := l.ReadSegment(segment.BaseOffset)
		if err != nil {
			t.Fatal(err)
		}
		old := splitBatches(t, content)
		h := header(t, old[0])
		empty, err := batch.Encode(h, h.LastOffsetDelta, nil, batch.None)
		if err != nil {
			t.Fatal(err)
		}
		kept := bytes.Join([][]byte{empty, old[len(old)-1]}, nil)
		if err := l.ReplaceSegment(segment.BaseOffset, kept); err != nil {
			t.Fatal(err)
		}
		check := func(l *Log) {
			t.Helper()
			data, err := l.Read(segment.BaseOffset+1, 1<<20, l.NextOffset())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(data, kept) {
				t.Fatalf("read inside the empty batch did not start with it and the batch kept after it")
			}
			if got := l.Segments()[1]; got.BaseOffset != segment.BaseOffset || got.NextOffset != segment.NextOffset {
				t.Fatalf("segment after compaction %+v, want range [%d, %d)", got, segment.BaseOffset, segment.NextOffset)
			}
		}
		check(l)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		for _, suffix := range []string{offsetIndexSuffix, timeIndexSuffix} {
			if err := fsys.Remove(l.segmentPath(segment.BaseOffset, suffix)); err != nil {
				t.Fatal(err)
			}
		}
		l = mustOpen(t, fsys, dir, testConfig(), 0)
		defer l.Close()
		check(l)
	})
}
