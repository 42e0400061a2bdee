package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// implementations returns every FS the conformance tests run against, each
// with a fresh root directory.
func implementations(t *testing.T) map[string]func(t *testing.T) (FS, string) {
	return map[string]func(t *testing.T) (FS, string){
		"os":    func(t *testing.T) (FS, string) { return Default(), t.TempDir() },
		"mem":   func(t *testing.T) (FS, string) { return NewMem(), "/data" },
		"crash": func(t *testing.T) (FS, string) { return NewCrashFS(), "data" },
		"errorfs-passthrough": func(t *testing.T) (FS, string) {
			return NewErrorFS(NewMem()), "/data"
		},
		"lossy": func(t *testing.T) (FS, string) {
			root := filepath.Join(t.TempDir(), "data")
			fsys, err := NewLossyFS(root)
			if err != nil {
				t.Fatal(err)
			}
			return fsys, root
		},
	}
}

// TestConformance runs one body against every implementation, proving they
// agree on the behaviour storage relies on.
func TestConformance(t *testing.T) {
	tests := map[string]func(t *testing.T, fsys FS, root string){
		"create write read":            testCreateWriteRead,
		"writes append after truncate": testTruncateThenAppend,
		"create truncates":             testCreateTruncates,
		"open append and read-only":    testOpenModes,
		"stat and missing files":       testStat,
		"rename replaces":              testRename,
		"list sorted":                  testList,
		"remove":                       testRemove,
		"atomic write":                 testWriteFileAtomic,
		"read after remove":            testReadAfterRemove,
		"concurrent read and write":    testConcurrentReadWrite,
		"lock is exclusive":            testLock,
	}
	for implName, newFS := range implementations(t) {
		for testName, body := range tests {
			t.Run(implName+"/"+testName, func(t *testing.T) {
				fsys, root := newFS(t)
				if err := fsys.MkdirAll(root); err != nil {
					t.Fatal(err)
				}
				body(t, fsys, root)
			})
		}
	}
}

func mustWrite(t *testing.T, f File, data []byte) {
	t.Helper()
	n, err := f.Write(data)
	if err != nil || n != len(data) {
		t.Fatalf("write: n=%d err=%v", n, err)
	}
}

func readAll(t *testing.T, f File) []byte {
	t.Helper()
	size, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, size)
	if n, err := f.ReadAt(data, 0); n != len(data) || (err != nil && err != io.EOF) {
		t.Fatalf("read: n=%d err=%v", n, err)
	}
	return data
}

func testCreateWriteRead(t *testing.T, fsys FS, root string) {
	f, err := fsys.Create(filepath.Join(root, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mustWrite(t, f, []byte("hello "))
	mustWrite(t, f, []byte("world"))
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, f); string(got) != "hello world" {
		t.Fatalf("content %q", got)
	}
	part := make([]byte, 5)
	if n, err := f.ReadAt(part, 6); n != 5 || err != nil || string(part) != "world" {
		t.Fatalf("ReadAt(6) = %d %v %q", n, err, part)
	}
	// Reading across the end returns what exists and io.EOF, as io.ReaderAt requires.
	if n, err := f.ReadAt(part, 8); n != 3 || err != io.EOF {
		t.Fatalf("ReadAt past end = %d %v", n, err)
	}
}

func testTruncateThenAppend(t *testing.T, fsys FS, root string) {
	f, err := fsys.Create(filepath.Join(root, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mustWrite(t, f, []byte("0123456789"))
	if err := f.Truncate(4); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, []byte("xy"))
	if got := readAll(t, f); string(got) != "0123xy" {
		t.Fatalf("content after truncate and append %q, want 0123xy", got)
	}
}

func testCreateTruncates(t *testing.T, fsys FS, root string) {
	name := filepath.Join(root, "a")
	f, err := fsys.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, []byte("old content"))
	f.Close()
	f, err = fsys.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if size, _ := f.Size(); size != 0 {
		t.Fatalf("size after re-create %d", size)
	}
}

func testOpenModes(t *testing.T, fsys FS, root string) {
	name := filepath.Join(root, "a")
	if _, err := fsys.OpenAppend(name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenAppend of missing file: %v", err)
	}
	if _, err := fsys.Open(name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open of missing file: %v", err)
	}
	f, _ := fsys.Create(name)
	mustWrite(t, f, []byte("ab"))
	f.Close()
	f, err := fsys.OpenAppend(name)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, []byte("cd"))
	f.Close()
	r, err := fsys.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := readAll(t, r); string(got) != "abcd" {
		t.Fatalf("content %q", got)
	}
	if _, err := r.Write([]byte("x")); err == nil {
		t.Fatal("write to read-only file succeeded")
	}
}

func testStat(t *testing.T, fsys FS, root string) {
	name := filepath.Join(root, "a")
	if _, err := fsys.Stat(name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat of missing file: %v", err)
	}
	f, _ := fsys.Create(name)
	mustWrite(t, f, make([]byte, 123))
	f.Close()
	if size, err := fsys.Stat(name); err != nil || size != 123 {
		t.Fatalf("Stat = %d %v", size, err)
	}
}

func testRename(t *testing.T, fsys FS, root string) {
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	for name, content := range map[string]string{a: "new", b: "old"} {
		f, _ := fsys.Create(name)
		mustWrite(t, f, []byte(content))
		f.Close()
	}
	if err := fsys.Rename(a, b); err != nil {
		t.Fatal(err)
	}
	if _, err := fsys.Stat(a); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("old name still there: %v", err)
	}
	data, err := ReadFile(fsys, b)
	if err != nil || string(data) != "new" {
		t.Fatalf("renamed content %q %v", data, err)
	}
}

func testList(t *testing.T, fsys FS, root string) {
	for _, name := range []string{"c", "a", "b"} {
		f, err := fsys.Create(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if err := fsys.MkdirAll(filepath.Join(root, "d", "e")); err != nil {
		t.Fatal(err)
	}
	names, err := fsys.List(root)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "c", "d"}; !slices.Equal(names, want) {
		t.Fatalf("List = %v, want %v", names, want)
	}
	if err := fsys.SyncDir(root); err != nil {
		t.Fatal(err)
	}
	if _, err := fsys.List(filepath.Join(root, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("List of missing dir: %v", err)
	}
}

func testRemove(t *testing.T, fsys FS, root string) {
	dir := filepath.Join(root, "d")
	if err := fsys.MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	f, _ := fsys.Create(filepath.Join(dir, "a"))
	f.Close()
	if err := fsys.Remove(dir); err == nil {
		t.Fatal("Remove of a non-empty directory succeeded")
	}
	if err := fsys.Remove(filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Remove(filepath.Join(dir, "a")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("second Remove: %v", err)
	}
	f, _ = fsys.Create(filepath.Join(dir, "b"))
	f.Close()
	if err := fsys.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := fsys.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("dir after RemoveAll: %v", err)
	}
	if err := fsys.RemoveAll(dir); err != nil {
		t.Fatalf("RemoveAll of missing dir: %v", err)
	}
}

// testLock: a held lock refuses a second holder (even in the same process,
// as two servers in one test would be) until its file is closed, and the
// holder can write who it is for the refused one to read.
func testLock(t *testing.T, fsys FS, root string) {
	name := filepath.Join(root, "LOCK")
	held, err := fsys.Lock(name)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, held, []byte("1234\n"))
	if _, err := fsys.Lock(name); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Lock while held: %v, want ErrLocked", err)
	}
	if got, err := ReadFile(fsys, name); err != nil || string(got) != "1234\n" {
		t.Fatalf("reading a held lock file: %q, %v", got, err)
	}
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := fsys.Lock(name)
	if err != nil {
		t.Fatalf("Lock after the holder closed: %v", err)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
}

func testWriteFileAtomic(t *testing.T, fsys FS, root string) {
	name := filepath.Join(root, "state")
	for _, content := range []string{"first", "second version"} {
		if err := WriteFileAtomic(fsys, name, []byte(content)); err != nil {
			t.Fatal(err)
		}
		data, err := ReadFile(fsys, name)
		if err != nil || string(data) != content {
			t.Fatalf("ReadFile = %q %v, want %q", data, err, content)
		}
	}
	names, _ := fsys.List(root)
	if !slices.Equal(names, []string{"state"}) {
		t.Fatalf("leftover files: %v", names)
	}
}

func testReadAfterRemove(t *testing.T, fsys FS, root string) {
	name := filepath.Join(root, "a")
	f, _ := fsys.Create(name)
	mustWrite(t, f, []byte("still here"))
	r, err := fsys.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f.Close()
	if err := fsys.Remove(name); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); string(got) != "still here" {
		t.Fatalf("open handle after remove reads %q", got)
	}
}

// testConcurrentReadWrite proves ReadAt below the size a writer has reached
// always sees the written bytes while the writer keeps appending.
func testConcurrentReadWrite(t *testing.T, fsys FS, root string) {
	const chunks, chunkBytes = 200, 64
	f, err := fsys.Create(filepath.Join(root, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, chunkBytes) }
	var writtenChunks atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range chunks {
			if _, err := f.Write(chunk(i)); err != nil {
				t.Error(err)
				return
			}
			writtenChunks.Store(int64(i + 1))
		}
	}()
	buf := make([]byte, chunkBytes)
	for reads := 0; reads < 4*chunks && writtenChunks.Load() < chunks; reads++ {
		written := int(writtenChunks.Load())
		if written == 0 {
			continue
		}
		i := written - 1 - reads%written
		if _, err := f.ReadAt(buf, int64(i*chunkBytes)); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, chunk(i)) {
			t.Fatalf("chunk %d reads %v", i, buf[:4])
		}
	}
	wg.Wait()
	if size, _ := f.Size(); size != chunks*chunkBytes {
		t.Fatalf("size %d", size)
	}
}

func ExampleWriteFileAtomic() {
	fsys := NewMem()
	_ = fsys.MkdirAll("/dir")
	_ = WriteFileAtomic(fsys, "/dir/settings", []byte("v1"))
	data, _ := ReadFile(fsys, "/dir/settings")
	fmt.Println(string(data))
	// Output: v1
}

// TestStartWriteback proves the OS file takes the hint without changing
// what it holds, and other files ignore it.
func TestStartWriteback(t *testing.T) {
	for name, fsys := range map[string]FS{"os": Default(), "mem": NewMem()} {
		dir := t.TempDir()
		if name == "mem" {
			dir = "/data"
			if err := fsys.MkdirAll(dir); err != nil {
				t.Fatal(err)
			}
		}
		f, err := fsys.Create(dir + "/f")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte("hello, log")); err != nil {
			t.Fatal(err)
		}
		StartWriteback(f, 0, 10)
		StartWriteback(f, 5, 1<<20) // past the end: still only a hint
		if err := f.Sync(); err != nil {
			t.Fatalf("%s: sync after writeback: %v", name, err)
		}
		got := make([]byte, 10)
		if _, err := f.ReadAt(got, 0); err != nil || string(got) != "hello, log" {
			t.Errorf("%s: read %q (%v) after writeback", name, got, err)
		}
		f.Close()
	}
	if _, ok := any(osFile{}).(WritebackStarter); !ok {
		t.Error("the OS file does not start writeback")
	}
}
