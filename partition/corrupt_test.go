package partition

import (
	"errors"
	"testing"

	"github.com/cairnlog/cairn/internal/testio"
	"github.com/cairnlog/cairn/storage/vfs"
)

// corruptSecondBatch flips the magic byte of the second batch of a segment
// file, as a bit flip on disk would: a recovery that trusts the segment
// (it was closed cleanly) does not see it, the first read across it does.
func corruptSecondBatch(t *testing.T, fsys vfs.FS, name string) {
	t.Helper()
	data, err := vfs.ReadFile(fsys, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := testio.FlipSecondBatchMagic(data); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	f, err := fsys.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptBatchTakesPartitionOffline: stored bytes that are not a valid
// batch fail every later read the same way, so the first read that finds
// them takes the partition offline (reported through Err) and it refuses
// writes, instead of accepting records nobody can read back.
func TestCorruptBatchTakesPartitionOffline(t *testing.T) {
	fsys := vfs.NewMem()
	p := open(t, fsys)
	appendDurable(t, p, produce(t, 2, "first"))
	appendDurable(t, p, produce(t, 2, "second"))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	corruptSecondBatch(t, fsys, "/data/t-0/00000000000000000000.log")

	p = open(t, fsys)
	defer p.Close()
	if err := p.Err(); err != nil {
		t.Fatalf("offline before any read: %v", err)
	}
	if _, err := p.Read(0, 1<<20); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("read across the corrupt batch: %v, want ErrStorageFailed", err)
	}
	if err := p.Err(); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("partition after the failed read: Err %v, want ErrStorageFailed", err)
	}
	if _, err := p.Append(produce(t, 1, "after")); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("append to the corrupt partition: %v, want ErrStorageFailed", err)
	}
}

// TestReadIOErrorKeepsPartitionOnline: a failed read (an I/O error, which
// may pass) fails only that read.
func TestReadIOErrorKeepsPartitionOnline(t *testing.T) {
	fsys := vfs.NewErrorFS(vfs.NewMem())
	p := open(t, fsys)
	defer p.Close()
	appendDurable(t, p, produce(t, 2, "first"))
	remove := fsys.Inject(vfs.Rule{Op: vfs.OpRead, PathContains: ".log", Err: errors.New("EIO")})
	if _, err := p.Read(0, 1<<20); !errors.Is(err, ErrRead) {
		t.Fatalf("read with a failing disk: %v, want ErrRead", err)
	}
	remove()
	if err := p.Err(); err != nil {
		t.Fatalf("partition after a failed read: %v", err)
	}
	appendDurable(t, p, produce(t, 1, "after"))
}
