package vfs

import (
	"errors"
	"sync"
)

// ErrPowerCut is what every mutating call of a PowerCutFS returns once the
// power is cut.
var ErrPowerCut = errors.New("power cut")

// PowerCutFS cuts the power of a CrashFS before its budget-th mutating call
// (create, write, sync, truncate, rename, remove, mkdir, directory sync): it
// keeps what a crash at that moment leaves behind, and fails that call and
// every later one with ErrPowerCut. Running an operation once for each
// budget visits every point at which a crash can interrupt it.
//
// It is safe for concurrent use.
type PowerCutFS struct {
	inner  *CrashFS
	opts   CrashOptions
	budget int

	mu    sync.Mutex
	calls int
	left  *CrashFS // what the cut left; nil until the power is cut
}

// NewPowerCutFS returns a filesystem over inner that cuts the power before
// its budget-th mutating call; opts say what the cut leaves.
func NewPowerCutFS(inner *CrashFS, budget int, opts CrashOptions) *PowerCutFS {
	return &PowerCutFS{inner: inner, budget: budget, opts: opts}
}

func (c *PowerCutFS) step() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left != nil {
		return ErrPowerCut
	}
	c.calls++
	if c.calls >= c.budget {
		c.left = c.inner.Crash(c.opts)
		return ErrPowerCut
	}
	return nil
}

// CutAfter moves the cut to before the n-th mutating call from now, so a
// test can prepare files first and cut only within the operation it probes.
func (c *PowerCutFS) CutAfter(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.budget = c.calls + n
}

// Cut reports whether the power is cut (by the budget, or by Crash).
func (c *PowerCutFS) Cut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.left != nil
}

// Crash returns what the power cut left, cutting it now if the budget has
// not; later mutating calls fail.
func (c *PowerCutFS) Crash() *CrashFS {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left == nil {
		c.left = c.inner.Crash(c.opts)
	}
	return c.left
}

func (c *PowerCutFS) file(f File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return &powerCutFile{File: f, fs: c}, nil
}

func (c *PowerCutFS) Create(name string) (File, error) {
	if err := c.step(); err != nil {
		return nil, err
	}
	return c.file(c.inner.Create(name))
}

func (c *PowerCutFS) OpenAppend(name string) (File, error) {
	return c.file(c.inner.OpenAppend(name))
}
func (c *PowerCutFS) Open(name string) (File, error)    { return c.file(c.inner.Open(name)) }
func (c *PowerCutFS) List(dir string) ([]string, error) { return c.inner.List(dir) }
func (c *PowerCutFS) Stat(name string) (int64, error)   { return c.inner.Stat(name) }
func (c *PowerCutFS) Lock(name string) (File, error)    { return c.inner.Lock(name) }

func (c *PowerCutFS) Remove(name string) error {
	if err := c.step(); err != nil {
		return err
	}
	return c.inner.Remove(name)
}

func (c *PowerCutFS) RemoveAll(name string) error {
	if err := c.step(); err != nil {
		return err
	}
	return c.inner.RemoveAll(name)
}

func (c *PowerCutFS) Rename(oldname, newname string) error {
	if err := c.step(); err != nil {
		return err
	}
	return c.inner.Rename(oldname, newname)
}

func (c *PowerCutFS) MkdirAll(dir string) error {
	if err := c.step(); err != nil {
		return err
	}
	return c.inner.MkdirAll(dir)
}

func (c *PowerCutFS) SyncDir(dir string) error {
	if err := c.step(); err != nil {
		return err
	}
	return c.inner.SyncDir(dir)
}

type powerCutFile struct {
	File
	fs *PowerCutFS
}

func (f *powerCutFile) Write(p []byte) (int, error) {
	if err := f.fs.step(); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *powerCutFile) Sync() error {
	if err := f.fs.step(); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *powerCutFile) Truncate(size int64) error {
	if err := f.fs.step(); err != nil {
		return err
	}
	return f.File.Truncate(size)
}
