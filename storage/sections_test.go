package storage

import (
	"bytes"
	"testing"

	"github.com/cairnlog/cairn/batch"

	"github.com/cairnlog/cairn/storage/vfs"
)

// TestReadSectionsMatchRead: the sections ReadSections gives hold exactly
// the bytes ReadAppend reads, for reads within one segment and across
// several, each section ending at the offset it claims; a section stays
// readable after its segment is deleted, until released.
func TestReadSectionsMatchRead(t *testing.T) {
	filesystems(t, func(t *testing.T, fsys vfs.FS, dir string) {
		l := mustOpen(t, fsys, dir, testConfig(), 0)
		defer l.Close()
		appendN(t, l, 60, 3, 100, 0) // 4 KiB segments: a dozen of them
		for _, c := range []struct {
			offset    int64
			maxBytes  int
			maxOffset int64
		}{{0, 1 << 20, 1 << 40}, {7, 500, 1 << 40}, {100, 5000, 1 << 40}, {30, 1 << 20, 90}, {179, 1, 1 << 40}, {180, 1 << 20, 1 << 40}} {
			want, err := l.ReadAppend(nil, c.offset, c.maxBytes, c.maxOffset)
			if err != nil {
				t.Fatal(err)
			}
			sections, err := l.ReadSections(nil, c.offset, c.maxBytes, c.maxOffset)
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			for _, s := range sections {
				part := make([]byte, s.Length)
				if _, err := s.File.ReadAt(part, s.Offset); err != nil {
					t.Fatal(err)
				}
				batches := splitBatches(t, part)
				h, err := batch.ParseHeader(batches[len(batches)-1])
				if err != nil || h.NextOffset() != s.NextOffset {
					t.Fatalf("read %+v: section ends at offset %d (%v), claims %d", c, h.NextOffset(), err, s.NextOffset)
				}
				got = append(got, part...)
			}
			ReleaseSections(sections)
			if !bytes.Equal(got, want) {
				t.Fatalf("read %+v: sections hold %d bytes, ReadAppend %d", c, len(got), len(want))
			}
			if c.offset == 0 && len(sections) < 2 {
				t.Fatalf("a read of the whole log gave %d sections: the test does not cross segments", len(sections))
			}
		}

		sections, err := l.ReadSections(nil, 0, 100, 1<<40)
		if err != nil || len(sections) != 1 {
			t.Fatalf("first section: %v, %d sections", err, len(sections))
		}
		if err := l.DeleteOldestSegment(0); err != nil {
			t.Fatal(err)
		}
		if _, err := sections[0].File.ReadAt(make([]byte, sections[0].Length), sections[0].Offset); err != nil {
			t.Fatalf("a held section of a deleted segment: %v", err)
		}
		ReleaseSections(sections)
		if _, err := sections[0].File.ReadAt(make([]byte, 1), 0); err == nil {
			t.Fatal("the deleted segment's file is still open after its last section was released")
		}
	})
}
