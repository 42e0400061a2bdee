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
// It is safe for concurrent use: a call that passed its step before the
// cut happened before it, so the cut waits for such calls to finish before
// it keeps what the disk holds (else a sync could return nil, and its
// caller acknowledge, after the image was taken without it).
type PowerCutFS struct {
	inner  *CrashFS
	opts   CrashOptions
	budget int

	mu       sync.Mutex
	idle     *sync.Cond // signalled when inflight drops to 0
	calls    int
	inflight int      // mutating calls past their step, not yet done
	cut      bool     // no mutating call passes its step any more
	left     *CrashFS // what the cut left; nil until taken
}

// NewPowerCutFS returns a filesystem over inner that cuts the power before
// its budget-th mutating call; opts say what the cut leaves.
func NewPowerCutFS(inner *CrashFS, budget int, opts CrashOptions) *PowerCutFS {
	c := &PowerCutFS{inner: inner, budget: budget, opts: opts}
	c.idle = sync.NewCond(&c.mu)
	return c
}

// step admits one mutating call, which must call done when it finished,
// or cuts the power.
func (c *PowerCutFS) step() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		return ErrPowerCut
	}
	c.calls++
	if c.calls >= c.budget {
		c.cutLocked()
		return ErrPowerCut
	}
	c.inflight++
	return nil
}

func (c *PowerCutFS) done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inflight--
	if c.inflight == 0 {
		c.idle.Broadcast()
	}
}

// cutLocked cuts the power once the calls already admitted are done.
func (c *PowerCutFS) cutLocked() {
	c.cut = true
	for c.inflight > 0 {
		c.idle.Wait()
	}
	if c.left == nil {
		c.left = c.inner.Crash(c.opts)
	}
}

// run performs one mutating call unless the power is cut.
func (c *PowerCutFS) run(op func() error) error {
	if err := c.step(); err != nil {
		return err
	}
	defer c.done()
	return op()
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
	return c.cut
}

// Crash returns what the power cut left, cutting it now if the budget has
// not; later mutating calls fail.
func (c *PowerCutFS) Crash() *CrashFS {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cutLocked()
	return c.left
}

func (c *PowerCutFS) file(f File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return &powerCutFile{File: f, fs: c}, nil
}

func (c *PowerCutFS) Create(name string) (File, error) {
	var f File
	err := c.run(func() (err error) { f, err = c.inner.Create(name); return err })
	return c.file(f, err)
}

func (c *PowerCutFS) OpenAppend(name string) (File, error) {
	return c.file(c.inner.OpenAppend(name))
}
func (c *PowerCutFS) Open(name string) (File, error)    { return c.file(c.inner.Open(name)) }
func (c *PowerCutFS) List(dir string) ([]string, error) { return c.inner.List(dir) }
func (c *PowerCutFS) Stat(name string) (int64, error)   { return c.inner.Stat(name) }
func (c *PowerCutFS) Lock(name string) (File, error)    { return c.inner.Lock(name) }

func (c *PowerCutFS) Remove(name string) error {
	return c.run(func() error { return c.inner.Remove(name) })
}

func (c *PowerCutFS) RemoveAll(name string) error {
	return c.run(func() error { return c.inner.RemoveAll(name) })
}

func (c *PowerCutFS) Rename(oldname, newname string) error {
	return c.run(func() error { return c.inner.Rename(oldname, newname) })
}

func (c *PowerCutFS) MkdirAll(dir string) error {
	return c.run(func() error { return c.inner.MkdirAll(dir) })
}

func (c *PowerCutFS) SyncDir(dir string) error {
	return c.run(func() error { return c.inner.SyncDir(dir) })
}

type powerCutFile struct {
	File
	fs *PowerCutFS
}

func (f *powerCutFile) Write(p []byte) (n int, err error) {
	err = f.fs.run(func() (err error) { n, err = f.File.Write(p); return err })
	return n, err
}

func (f *powerCutFile) Sync() error {
	return f.fs.run(f.File.Sync)
}

func (f *powerCutFile) Truncate(size int64) error {
	return f.fs.run(func() error { return f.File.Truncate(size) })
}
