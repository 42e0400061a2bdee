package raftlog

import (
	"errors"
	"sync"

	"github.com/cairnlog/cairn/storage/vfs"
)

var errCrashed = errors.New("power cut")

// crashingFS cuts the power before its budget-th mutating call (create,
// write, sync, rename, remove, directory sync): it keeps the durable state
// of the CrashFS at that moment and fails that call and every later one.
type crashingFS struct {
	vfs.FS
	inner    *vfs.CrashFS
	opts     vfs.CrashOptions
	budget   int
	mu       sync.Mutex
	calls    int
	snapshot *vfs.CrashFS
}

func newCrashingFS(inner *vfs.CrashFS, budget int, opts vfs.CrashOptions) *crashingFS {
	return &crashingFS{FS: inner, inner: inner, budget: budget, opts: opts}
}

func (c *crashingFS) step() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snapshot != nil {
		return errCrashed
	}
	c.calls++
	if c.calls >= c.budget {
		c.snapshot = c.inner.Crash(c.opts)
		return errCrashed
	}
	return nil
}

// crash returns what the power cut left, cutting it now if the budget did
// not, and whether the budget did.
func (c *crashingFS) crash() (*vfs.CrashFS, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snapshot != nil {
		return c.snapshot, true
	}
	return c.inner.Crash(c.opts), false
}

func (c *crashingFS) file(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &crashingFile{File: f, fs: c}, nil
}

func (c *crashingFS) Create(name string) (vfs.File, error) {
	if err := c.step(); err != nil {
		return nil, err
	}
	return c.file(c.inner.Create(name))
}

func (c *crashingFS) OpenAppend(name string) (vfs.File, error) {
	return c.file(c.inner.OpenAppend(name))
}

func (c *crashingFS) Remove(name string) error {
	if err := c.step(); err != nil {
		return err
	}
	return c.inner.Remove(name)
}

func (c *crashingFS) Rename(oldname, newname string) error {
	if err := c.step(); err != nil {
		return err
	}
	return c.inner.Rename(oldname, newname)
}

func (c *crashingFS) SyncDir(dir string) error {
	if err := c.step(); err != nil {
		return err
	}
	return c.inner.SyncDir(dir)
}

type crashingFile struct {
	vfs.File
	fs *crashingFS
}

func (f *crashingFile) Write(p []byte) (int, error) {
	if err := f.fs.step(); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *crashingFile) Sync() error {
	if err := f.fs.step(); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *crashingFile) Truncate(size int64) error {
	if err := f.fs.step(); err != nil {
		return err
	}
	return f.File.Truncate(size)
}
