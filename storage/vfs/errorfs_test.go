package vfs

import (
	"errors"
	"syscall"
	"testing"
)

// TestErrorFSRuleFiresAfterCount proves a rule lets After matching calls
// through, then fails every matching call until removed, and ignores other
// paths and operations.
func TestErrorFSRuleFiresAfterCount(t *testing.T) {
	e := NewErrorFS(NewMem())
	remove := e.Inject(Rule{Op: OpSync, PathContains: ".log", Err: syscall.EIO, After: 2})
	logFile, _ := e.Create("0.log")
	other, _ := e.Create("0.index")
	for i := range 2 {
		if err := logFile.Sync(); err != nil {
			t.Fatalf("sync %d failed early: %v", i, err)
		}
	}
	for range 3 {
		if err := logFile.Sync(); !errors.Is(err, syscall.EIO) {
			t.Fatalf("sync after count: %v, want EIO", err)
		}
	}
	if err := other.Sync(); err != nil {
		t.Fatalf("non-matching path failed: %v", err)
	}
	if _, err := logFile.Write([]byte("x")); err != nil {
		t.Fatalf("non-matching op failed: %v", err)
	}
	remove()
	if err := logFile.Sync(); err != nil {
		t.Fatalf("sync after remove: %v", err)
	}
}

// TestErrorFSWriteLandsHalf proves a failed write behaves like a disk that
// filled up part-way: half the bytes land and the count says so.
func TestErrorFSWriteLandsHalf(t *testing.T) {
	e := NewErrorFS(NewMem())
	f, _ := e.Create("a")
	mustWrite(t, f, []byte("ok"))
	remove := e.Inject(Rule{Op: OpWrite, Err: syscall.ENOSPC})
	n, err := f.Write([]byte("0123456789"))
	if !errors.Is(err, syscall.ENOSPC) || n != 5 {
		t.Fatalf("Write = %d, %v; want 5, ENOSPC", n, err)
	}
	remove()
	if got := readAll(t, f); string(got) != "ok01234" {
		t.Fatalf("content %q", got)
	}
}

// TestErrorFSOperations proves each filesystem-level operation can be failed.
func TestErrorFSOperations(t *testing.T) {
	e := NewErrorFS(NewMem())
	_ = e.MkdirAll("d")
	f, _ := e.Create("d/a")
	f.Close()
	calls := map[Op]func() error{
		OpCreate:   func() error { _, err := e.Create("d/b"); return err },
		OpOpen:     func() error { _, err := e.Open("d/a"); return err },
		OpRemove:   func() error { return e.Remove("d/a") },
		OpRename:   func() error { return e.Rename("d/a", "d/c") },
		OpMkdirAll: func() error { return e.MkdirAll("d/e") },
		OpList:     func() error { _, err := e.List("d"); return err },
		OpSyncDir:  func() error { return e.SyncDir("d") },
		OpStat:     func() error { _, err := e.Stat("d/a"); return err },
	}
	for op, call := range calls {
		remove := e.Inject(Rule{Op: op, PathContains: "d", Err: syscall.EIO})
		if err := call(); !errors.Is(err, syscall.EIO) {
			t.Errorf("%s: %v, want EIO", op, err)
		}
		remove()
	}
}
