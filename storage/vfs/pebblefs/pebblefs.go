package pebblefs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairnlog/cairn/storage/vfs"
)

// New returns pebble's view of fsys: pebble's own filesystem for the
// operating system's, an adapter for any other.
func New(fsys vfs.FS) pebblevfs.FS {
	if vfs.IsOS(fsys) {
		return pebblevfs.Default
	}
	return &adapter{fsys: fsys}
}

type adapter struct {
	fsys vfs.FS
}

var _ pebblevfs.FS = (*adapter)(nil)

func (a *adapter) Create(name string, _ pebblevfs.DiskWriteCategory) (pebblevfs.File, error) {
	f, err := a.fsys.Create(name)
	if err != nil {
		return nil, err
	}
	return &file{f: f, name: name}, nil
}

func (a *adapter) Link(oldname, newname string) error {
	return fmt.Errorf("link %s to %s: %w", oldname, newname, pebblevfs.ErrUnsupported)
}

func (a *adapter) Open(name string, opts ...pebblevfs.OpenOption) (pebblevfs.File, error) {
	f, err := a.fsys.Open(name)
	if err != nil {
		return nil, err
	}
	pf := &file{f: f, name: name}
	for _, opt := range opts {
		opt.Apply(pf)
	}
	return pf, nil
}

func (a *adapter) OpenReadWrite(name string, _ pebblevfs.DiskWriteCategory, _ ...pebblevfs.OpenOption) (pebblevfs.File, error) {
	return nil, fmt.Errorf("open %s for random writes: %w", name, pebblevfs.ErrUnsupported)
}

// OpenDir returns a handle whose Sync makes the directory's entries durable.
func (a *adapter) OpenDir(name string) (pebblevfs.File, error) {
	if _, err := a.fsys.List(name); err != nil {
		return nil, err
	}
	return &dir{fsys: a.fsys, name: name}, nil
}

func (a *adapter) Remove(name string) error    { return a.fsys.Remove(name) }
func (a *adapter) RemoveAll(name string) error { return a.fsys.RemoveAll(name) }

func (a *adapter) Rename(oldname, newname string) error { return a.fsys.Rename(oldname, newname) }

// ReuseForWrite creates newname afresh: a vfs.File only appends, so a
// recycled file could not be overwritten from its start.
func (a *adapter) ReuseForWrite(oldname, newname string, category pebblevfs.DiskWriteCategory) (pebblevfs.File, error) {
	if err := a.fsys.Remove(oldname); err != nil {
		return nil, err
	}
	return a.Create(newname, category)
}

func (a *adapter) MkdirAll(dir string, _ os.FileMode) error { return a.fsys.MkdirAll(dir) }

// Lock takes the underlying filesystem's exclusive lock; closing the
// returned file releases it.
func (a *adapter) Lock(name string) (io.Closer, error) {
	f, err := a.fsys.Lock(name)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (a *adapter) List(dir string) ([]string, error) { return a.fsys.List(dir) }

func (a *adapter) Stat(name string) (pebblevfs.FileInfo, error) {
	size, err := a.fsys.Stat(name)
	if err != nil {
		return nil, err
	}
	// vfs.FS has no file mode; only a directory can be listed.
	_, listErr := a.fsys.List(name)
	return fileInfo{name: filepath.Base(name), size: size, isDir: listErr == nil}, nil
}

func (a *adapter) PathBase(p string) string       { return filepath.Base(p) }
func (a *adapter) PathJoin(elem ...string) string { return filepath.Join(elem...) }
func (a *adapter) PathDir(p string) string        { return filepath.Dir(p) }
func (a *adapter) Unwrap() pebblevfs.FS           { return nil }
func (a *adapter) GetDiskUsage(string) (pebblevfs.DiskUsage, error) {
	return pebblevfs.DiskUsage{}, pebblevfs.ErrUnsupported
}

// file adapts a vfs.File, adding the read position that pebble's sequential
// reads need.
type file struct {
	f    vfs.File
	name string

	mu  sync.Mutex
	pos int64
}

var _ pebblevfs.File = (*file)(nil)

func (f *file) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.f.ReadAt(p, f.pos)
	f.pos += int64(n)
	if n > 0 && errors.Is(err, io.EOF) {
		err = nil // the next Read reports the end
	}
	return n, err
}

func (f *file) ReadAt(p []byte, off int64) (int, error) { return f.f.ReadAt(p, off) }
func (f *file) Write(p []byte) (int, error)             { return f.f.Write(p) }
func (f *file) Close() error                            { return f.f.Close() }
func (f *file) Sync() error                             { return f.f.Sync() }
func (f *file) SyncData() error                         { return f.f.Sync() }
func (f *file) Preallocate(int64, int64) error          { return nil }
func (f *file) Prefetch(int64, int64) error             { return nil }
func (f *file) Fd() uintptr                             { return pebblevfs.InvalidFd }

func (f *file) WriteAt([]byte, int64) (int, error) {
	return 0, fmt.Errorf("write at an offset in %s: %w", f.name, pebblevfs.ErrUnsupported)
}

// SyncTo syncs the whole file: a vfs.File has no ranged sync.
func (f *file) SyncTo(int64) (fullSync bool, err error) {
	if err := f.f.Sync(); err != nil {
		return false, err
	}
	return true, nil
}

func (f *file) Stat() (pebblevfs.FileInfo, error) {
	size, err := f.f.Size()
	if err != nil {
		return nil, err
	}
	return fileInfo{name: filepath.Base(f.name), size: size}, nil
}

// dir is an opened directory: only Sync and Close do anything.
type dir struct {
	fsys vfs.FS
	name string
}

var _ pebblevfs.File = (*dir)(nil)

func (d *dir) Sync() error     { return d.fsys.SyncDir(d.name) }
func (d *dir) SyncData() error { return d.Sync() }
func (d *dir) Close() error    { return nil }
func (d *dir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errIsDir}
}
func (d *dir) ReadAt([]byte, int64) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errIsDir}
}
func (d *dir) Write([]byte) (int, error) {
	return 0, &fs.PathError{Op: "write", Path: d.name, Err: errIsDir}
}
func (d *dir) WriteAt([]byte, int64) (int, error) {
	return 0, &fs.PathError{Op: "write", Path: d.name, Err: errIsDir}
}
func (d *dir) Preallocate(int64, int64) error { return nil }
func (d *dir) Prefetch(int64, int64) error    { return nil }
func (d *dir) Fd() uintptr                    { return pebblevfs.InvalidFd }
func (d *dir) SyncTo(int64) (bool, error)     { return false, nil }
func (d *dir) Stat() (pebblevfs.FileInfo, error) {
	return fileInfo{name: filepath.Base(d.name), isDir: true}, nil
}

var errIsDir = errors.New("is a directory")

type fileInfo struct {
	name  string
	size  int64
	isDir bool
}

var _ pebblevfs.FileInfo = fileInfo{}

func (i fileInfo) Name() string { return i.name }
func (i fileInfo) Size() int64  { return i.size }
func (i fileInfo) Mode() os.FileMode {
	if i.isDir {
		return os.ModeDir | 0o755
	}
	return 0o644
}
func (i fileInfo) ModTime() time.Time           { return time.Time{} }
func (i fileInfo) IsDir() bool                  { return i.isDir }
func (i fileInfo) Sys() any                     { return nil }
func (i fileInfo) DeviceID() pebblevfs.DeviceID { return pebblevfs.DeviceID{} }
