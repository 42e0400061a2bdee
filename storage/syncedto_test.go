package storage

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/cairnlog/cairn/storage/vfs"
)

// TestOpenSyncedToRefusesDamageBelowIt: past the recovery point, Open takes
// a bad batch or a short end for a torn tail and cuts it. A caller that
// knows the log was synced further (a replica's own record of each sync)
// opens with OpenSyncedTo, which refuses the same damage as corruption and
// leaves every segment's batches as they were.
func TestOpenSyncedToRefusesDamageBelowIt(t *testing.T) {
	// build writes batches past the recovery point across segments, syncs
	// them, and returns the crash image, the synced end and the last
	// segment's file name.
	build := func(t *testing.T) (vfs.FS, int64, string) {
		c := vfs.NewCrashFS()
		l := mustOpen(t, c, "p", testConfig(), 0)
		appendN(t, l, 30, 2, 100, 0)
		if _, err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		segments := l.Segments()
		last := segments[len(segments)-1]
		if len(segments) < 2 || last.NextOffset == last.BaseOffset {
			t.Fatalf("want batches in a later segment: %+v", segments)
		}
		return c.Crash(vfs.CrashOptions{}), l.NextOffset(), "p/" + segmentFileName(last.BaseOffset, logSuffix)
	}
	damages := []struct {
		name   string
		damage func(data []byte) []byte
	}{
		{"last batch cut short", func(data []byte) []byte { return data[:len(data)-7] }},
		{"bit flipped in the last batch", func(data []byte) []byte {
			data[len(data)-20] ^= 0x08
			return data
		}},
		{"last batch cut away whole", func(data []byte) []byte { return data[:lastBatchStart(t, data)] }},
	}
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			fsys, synced, name := build(t)
			data, err := vfs.ReadFile(fsys, name)
			if err != nil {
				t.Fatal(err)
			}
			damaged := d.damage(data)
			if err := vfs.WriteFileAtomic(fsys, name, damaged); err != nil {
				t.Fatal(err)
			}
			var corrupt *CorruptionError
			if _, err := OpenSyncedTo(fsys, "p", testConfig(), 0, synced); !errors.As(err, &corrupt) ||
				!strings.Contains(err.Error(), "synced up to") {
				t.Fatalf("OpenSyncedTo(%d): %v, want a CorruptionError naming the synced offset", synced, err)
			}
			if after, err := vfs.ReadFile(fsys, name); err != nil || !bytes.Equal(after, damaged) {
				t.Fatalf("segment after the refused open: %d bytes (%v), want the %d damaged bytes unchanged", len(after), err, len(damaged))
			}
			// Without the synced offset the same damage is a torn tail.
			l, err := Open(fsys, "p", testConfig(), 0)
			if err != nil {
				t.Fatalf("Open without the synced offset: %v", err)
			}
			defer l.Close()
			if l.NextOffset() >= synced {
				t.Fatalf("Open cut nothing: the log ends at %d, synced to %d", l.NextOffset(), synced)
			}
		})
	}
	t.Run("a later segment missing", func(t *testing.T) {
		fsys, synced, last := build(t)
		names, err := fsys.List("p")
		if err != nil {
			t.Fatal(err)
		}
		var logs []string
		for _, name := range names {
			if strings.HasSuffix(name, logSuffix) {
				logs = append(logs, name)
			}
		}
		if len(logs) < 3 {
			t.Fatalf("want three segments or more: %v", names)
		}
		// The second segment: past the recovery point (Open's checkpoint,
		// in the first), so recovery scans it.
		if err := fsys.Remove("p/" + logs[1]); err != nil {
			t.Fatal(err)
		}
		var corrupt *CorruptionError
		if _, err := OpenSyncedTo(fsys, "p", testConfig(), 0, synced); !errors.As(err, &corrupt) ||
			!strings.Contains(err.Error(), "synced up to") {
			t.Fatalf("OpenSyncedTo(%d) without %s: %v, want a CorruptionError naming the synced offset", synced, logs[1], err)
		}
		if _, err := fsys.Stat(last); err != nil {
			t.Fatalf("the last segment after the refused open: %v", err)
		}
	})
	t.Run("intact, synced to its end", func(t *testing.T) {
		fsys, synced, _ := build(t)
		l, err := OpenSyncedTo(fsys, "p", testConfig(), 0, synced)
		if err != nil {
			t.Fatalf("OpenSyncedTo(%d) of an intact log: %v", synced, err)
		}
		defer l.Close()
		if l.NextOffset() != synced {
			t.Fatalf("log ends at %d, want %d", l.NextOffset(), synced)
		}
	})
	t.Run("intact, said synced past its end", func(t *testing.T) {
		fsys, synced, _ := build(t)
		var corrupt *CorruptionError
		if _, err := OpenSyncedTo(fsys, "p", testConfig(), 0, synced+1); !errors.As(err, &corrupt) {
			t.Fatalf("OpenSyncedTo(%d) of a log ending at %d: %v, want a CorruptionError", synced+1, synced, err)
		}
	})
}

// lastBatchStart is the position of the last batch in a segment's bytes.
func lastBatchStart(t *testing.T, data []byte) int {
	t.Helper()
	position, last := 0, -1
	for position < len(data) {
		last = position
		position += int(header(t, data[position:]).TotalBytes())
	}
	if last < 0 || position != len(data) {
		t.Fatalf("segment of %d bytes does not end on a batch", len(data))
	}
	return last
}
