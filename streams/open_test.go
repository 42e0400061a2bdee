package streams

import (
	"path/filepath"
	"testing"

	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"
)

// TestOpenRebuildsUnreadableIndex: the index is derived data, so files that
// pebble cannot open (a torn or corrupted manifest after a crash or a disk
// fault) make Open start over empty for the log to refill, rather than fail
// and keep the partition down.
func TestOpenRebuildsUnreadableIndex(t *testing.T) {
	fsys := pebblevfs.NewMem()
	dir := "/idx"
	x, err := Open(dir, 0, Options{FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := appendRecs(t, x, event("s", "a", "any"), event("s", "b", "any")); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	names, err := fsys.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	corrupted := 0
	for _, name := range names {
		if matched, _ := filepath.Match("MANIFEST-*", name); !matched {
			continue
		}
		f, err := fsys.Create(filepath.Join(dir, name), pebblevfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte("not a manifest, not at all")); err != nil {
			t.Fatal(err)
		}
		_ = f.Close()
		corrupted++
	}
	if corrupted == 0 {
		t.Fatalf("no manifest among %v", names)
	}
	x, err = Open(dir, 2, Options{FS: fsys})
	if err != nil {
		t.Fatalf("open over a corrupted manifest: %v", err)
	}
	defer x.Close()
	if x.Next() != 0 {
		t.Fatalf("rebuilt index covers up to %d, want 0 (empty, to be refilled from the log)", x.Next())
	}
	st, err := x.State("s")
	if err != nil {
		t.Fatal(err)
	}
	if st.LastRevision != -1 {
		t.Fatalf("stream s at revision %d in a rebuilt index, want -1 (no stream yet)", st.LastRevision)
	}
}
