package pebblefs_test

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairnlog/cairn/storage/vfs"
	"github.com/cairnlog/cairn/storage/vfs/pebblefs"
)

func openDB(t *testing.T, fsys vfs.FS) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("/data/index", &pebble.Options{FS: pebblefs.New(fsys), DisableWAL: true})
	if err != nil {
		t.Fatalf("open pebble: %v", err)
	}
	return db
}

func get(t *testing.T, db *pebble.DB, key string) (string, bool) {
	t.Helper()
	v, closer, err := db.Get([]byte(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return "", false
	}
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer closer.Close()
	return string(v), true
}

// A power cut keeps what pebble flushed and synced and drops the rest, as it
// would on a disk: the adapter passes pebble's syncs to the crash filesystem.
func TestCrashKeepsOnlyFlushedData(t *testing.T) {
	fsys := vfs.NewCrashFS()
	db := openDB(t, fsys)
	for i := range 100 {
		if err := db.Set(fmt.Appendf(nil, "flushed-%03d", i), []byte("v"), pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if err := db.Set([]byte("unflushed"), []byte("v"), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	crashed := fsys.Crash(vfs.CrashOptions{})
	_ = db.Close() // the process "died"; its handles are gone

	db = openDB(t, crashed)
	defer db.Close()
	for i := range 100 {
		if _, ok := get(t, db, fmt.Sprintf("flushed-%03d", i)); !ok {
			t.Fatalf("flushed-%03d lost in the crash", i)
		}
	}
	if _, ok := get(t, db, "unflushed"); ok {
		t.Fatal("a key never flushed survived the crash")
	}
}

// A failed sync reaches pebble as an error, so the index learns of it
// instead of trusting data the disk did not take.
func TestSyncErrorsReachPebble(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	injected := errors.New("injected sync failure")
	var remove func()
	background := make(chan error, 1)
	db, err := pebble.Open("/data/index", &pebble.Options{
		FS:         pebblefs.New(efs),
		DisableWAL: true,
		EventListener: &pebble.EventListener{BackgroundError: func(err error) {
			select {
			case background <- err:
				// Pebble retries the flush without pause; let the retry
				// succeed so the database can close.
				remove()
			default:
			}
		}},
	})
	if err != nil {
		t.Fatalf("open pebble: %v", err)
	}
	defer db.Close()
	if err := db.Set([]byte("k"), []byte("v"), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	remove = efs.Inject(vfs.Rule{Op: vfs.OpSync, Err: injected})
	go func() { _ = db.Flush() }()
	select {
	case err := <-background:
		if !errors.Is(err, injected) {
			t.Fatalf("background error = %v, want the injected sync failure", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("pebble reported no error for a failed sync")
	}
}

func TestLockIsExclusive(t *testing.T) {
	fsys := pebblefs.New(vfs.NewMem())
	if err := fsys.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	first, err := fsys.Lock("/d/LOCK")
	if err != nil {
		t.Fatalf("first lock: %v", err)
	}
	if _, err := fsys.Lock("/d/LOCK"); err == nil {
		t.Fatal("a second lock of the same file succeeded")
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second, err := fsys.Lock("/d/LOCK")
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	_ = second.Close()
}

func TestSequentialReads(t *testing.T) {
	fsys := pebblefs.New(vfs.NewMem())
	f, err := fsys.Create("/f", "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("hello, world")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := fsys.Open("/f")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	all, err := io.ReadAll(r)
	if err != nil || string(all) != "hello, world" {
		t.Fatalf("ReadAll = %q, %v", all, err)
	}
	info, err := fsys.Stat("/f")
	if err != nil || info.Size() != 12 || info.IsDir() {
		t.Fatalf("Stat = %+v, %v", info, err)
	}
	if info, err := fsys.Stat("/"); err != nil || !info.IsDir() {
		t.Fatalf("Stat of the root = %+v, %v", info, err)
	}
}
