package journal

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"syscall"
	"testing"

	"github.com/cairnlog/cairn/storage/vfs"
)

func record(name string, first, next int64, data string) Record {
	return Record{Key: Key{Name: name, TopicID: [16]byte{1, 2, 3}}, First: first, Next: next, Data: []byte(data)}
}

func equalRecords(a, b []Record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || a[i].First != b[i].First || a[i].Next != b[i].Next || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}

func TestRecordsRoundTripAndStopAtDamage(t *testing.T) {
	want := []Record{record("t-0", 0, 3, "abc"), record("other-12", 7, 9, "xyzzy")}
	var b []byte
	for _, r := range want {
		var err error
		if b, err = AppendRecord(b, r); err != nil {
			t.Fatal(err)
		}
	}
	got, used := DecodeRecords(b)
	if !equalRecords(got, want) || used != len(b) {
		t.Fatalf("decoded %+v (%d of %d bytes), want %+v", got, used, len(b), want)
	}
	first := len(b) - (8 + fixedBody + len("other-12") + len("xyzzy"))
	for cut := first; cut < len(b); cut++ {
		if got, used := DecodeRecords(b[:cut]); !equalRecords(got, want[:1]) || used != first {
			t.Fatalf("cut at %d: %d records, %d bytes used, want the first record only", cut, len(got), used)
		}
	}
	for i := first; i < len(b); i++ {
		damaged := bytes.Clone(b)
		damaged[i] ^= 0x10
		if got, _ := DecodeRecords(damaged); len(got) != 1 {
			t.Fatalf("flip at byte %d: %d records, want 1", i, len(got))
		}
	}
}

func TestAppendRecordRefusesOversized(t *testing.T) {
	if _, err := AppendRecord(nil, Record{Key: Key{Name: "t-0"}, First: 0, Next: 1, Data: make([]byte, MaxRecordBytes)}); err == nil {
		t.Fatal("a record over MaxRecordBytes was encoded")
	}
}

func TestOpenReadsEarlierFilesAndStartsANewOne(t *testing.T) {
	fsys := vfs.NewCrashFS()
	if err := fsys.MkdirAll("/d"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	j, recs, err := Open(fsys, "/d/journal", Options{MaxFileBytes: 100})
	if err != nil || len(recs) != 0 {
		t.Fatalf("open empty: %v, %d records", err, len(recs))
	}
	var want []Record
	for i := range 5 {
		round := []Record{record("t-0", int64(2*i), int64(2*i+1), fmt.Sprintf("batch %d of t-0 padded to a size", i)),
			record("t-1", int64(i), int64(i+1), fmt.Sprintf("batch %d of t-1", i))}
		if _, err := j.Write(round); err != nil {
			t.Fatal(err)
		}
		want = append(want, round...)
	}
	if files := j.Files(); len(files) != 5 {
		t.Fatalf("files %v: want a new file for each round past 100 bytes", files)
	}
	// Unsynced bytes after the last round are lost in a crash; the rest is read back.
	crashed := fsys.Crash(vfs.CrashOptions{})
	j2, got, err := Open(crashed, "/d/journal", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !equalRecords(got, want) {
		t.Fatalf("read back %d records, want %d", len(got), len(want))
	}
	files := j2.Files()
	if len(files) != 6 || files[5] != 6 {
		t.Fatalf("files after reopen %v, want 1..5 and a new 6", files)
	}
	if err := j2.Remove(6); err == nil {
		t.Fatal("removed the file being written")
	}
	for _, seq := range files[:5] {
		if err := j2.Remove(seq); err != nil {
			t.Fatal(err)
		}
	}
	names, err := crashed.List("/d/journal")
	if err != nil || len(names) != 1 || names[0] != fileName(6) {
		t.Fatalf("left %v (%v), want only %s", names, err, fileName(6))
	}
	if err := j2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j2.Remove(6); err != nil {
		t.Fatal(err)
	}
}

func TestFailedSyncFailsTheJournal(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	j, _, err := Open(efs, "/journal", Options{})
	if err != nil {
		t.Fatal(err)
	}
	remove := efs.Inject(vfs.Rule{Op: vfs.OpSync, PathContains: path.Join("/journal", fileName(1)), Err: syscall.EIO})
	if _, err := j.Write([]Record{record("t-0", 0, 1, "x")}); !errors.Is(err, ErrFailed) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("write with a failing sync: %v, want ErrFailed wrapping EIO", err)
	}
	remove()
	if _, err := j.Write([]Record{record("t-0", 1, 2, "y")}); !errors.Is(err, ErrFailed) {
		t.Fatalf("write after a failed sync: %v, want ErrFailed", err)
	}
}

func FuzzDecodeRecords(f *testing.F) {
	b, _ := AppendRecord(nil, record("t-0", 0, 3, "abc"))
	f.Add(b)
	f.Add(append(b, b[:10]...))
	f.Fuzz(func(t *testing.T, data []byte) {
		records, used := DecodeRecords(data)
		if used > len(data) {
			t.Fatalf("used %d of %d bytes", used, len(data))
		}
		var again []byte
		for _, r := range records {
			if r.Next <= r.First || r.First < 0 || len(r.Data) == 0 {
				t.Fatalf("decoded an invalid record %+v", r)
			}
			var err error
			if again, err = AppendRecord(again, r); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(again, data[:used]) {
			t.Fatal("records do not encode back to the bytes they came from")
		}
	})
}
