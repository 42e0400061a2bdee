package storage

import (
	"bytes"
	"testing"

	"github.com/cairnlog/cairn/storage/vfs"
)

func TestUnsyncedTail(t *testing.T) {
	filesystems(t, func(t *testing.T, fsys vfs.FS, dir string) {
		l := mustOpen(t, fsys, dir, testConfig(), 0)
		defer l.Close()
		if tail, ok, err := l.UnsyncedTail(1 << 20); err != nil || !ok || tail.First != 0 || tail.Next != 0 {
			t.Fatalf("fresh log: %+v %v %v, want an empty tail at 0", tail, ok, err)
		}
		first := appendN(t, l, 3, 2, 100, 0)
		tail, ok, err := l.UnsyncedTail(1 << 20)
		if err != nil || !ok || tail.First != 0 || tail.Next != 6 || !bytes.Equal(readTail(t, l, tail), bytes.Join(first, nil)) {
			t.Fatalf("after 3 batches: [%d, %d), ok %v, err %v; want the 3 batches", tail.First, tail.Next, ok, err)
		}
		if _, ok, _ := l.UnsyncedTail(int64(tail.Len()) - 1); ok {
			t.Fatal("a tail over maxBytes was given")
		}
		l.MarkJournaled(tail)
		if !l.NeedsJournal(6) {
			t.Fatal("a journaled, unsynced log does not need the journal")
		}
		second := appendN(t, l, 2, 1, 50, 0)
		tail, ok, err = l.UnsyncedTail(1 << 20)
		if err != nil || !ok || tail.First != 6 || tail.Next != 8 || !bytes.Equal(readTail(t, l, tail), bytes.Join(second, nil)) {
			t.Fatalf("after journaling: [%d, %d), ok %v, err %v; want the 2 later batches", tail.First, tail.Next, ok, err)
		}
		if _, err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		l.MarkJournaled(tail) // late: the sync covered it already
		if l.NeedsJournal(8) {
			t.Fatal("a synced log still needs the journal")
		}
		if tail, ok, err := l.UnsyncedTail(1 << 20); err != nil || !ok || tail.First != 8 || tail.Next != 8 {
			t.Fatalf("after sync: %+v %v %v, want an empty tail at 8", tail, ok, err)
		}
		// Past a roll the new segment's name is not durable: only Sync will do.
		for l.Segments()[0].Active {
			appendN(t, l, 1, 1, 1000, 0)
		}
		if _, ok, err := l.UnsyncedTail(1 << 20); ok || err != nil {
			t.Fatalf("after a roll: ok %v, err %v; want not ok", ok, err)
		}
		if _, err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		more := appendN(t, l, 1, 1, 10, 0)
		tail, ok, err = l.UnsyncedTail(1 << 20)
		if err != nil || !ok || !bytes.Equal(readTail(t, l, tail), more[0]) {
			t.Fatalf("after the roll's sync: ok %v, err %v, %d bytes; want the new batch", ok, err, tail.Len())
		}
	})
}

func readTail(t *testing.T, l *Log, tail Tail) []byte {
	t.Helper()
	data := make([]byte, tail.Len())
	if err := l.ReadTail(tail, data); err != nil {
		t.Fatal(err)
	}
	return data
}
