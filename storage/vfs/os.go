package vfs

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Default returns the operating system's filesystem.
func Default() FS { return osFS{} }

type osFS struct{}

const (
	filePerm = 0o644
	dirPerm  = 0o755
)

func (osFS) Create(name string) (File, error) {
	return openOS(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND)
}

func (osFS) OpenAppend(name string) (File, error) {
	return openOS(name, os.O_RDWR|os.O_APPEND)
}

func (osFS) Open(name string) (File, error) {
	return openOS(name, os.O_RDONLY)
}

func openOS(name string, flag int) (File, error) {
	f, err := os.OpenFile(name, flag, filePerm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Remove(name string) error             { return os.Remove(name) }
func (osFS) RemoveAll(name string) error          { return os.RemoveAll(name) }
func (osFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }
func (osFS) MkdirAll(dir string) error            { return os.MkdirAll(dir, dirPerm) }

func (osFS) List(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir) // ReadDir sorts by name
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, entry := range entries {
		names[i] = entry.Name()
	}
	return names, nil
}

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if closeErr := d.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// Lock uses flock(2), whose lock belongs to the open file description: it is
// released when the file is closed or the process dies, however it dies, and
// two opens in one process exclude each other as two processes do.
func (osFS) Lock(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_APPEND, filePerm)
	if err != nil {
		return nil, err
	}
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, &os.PathError{Op: "lock", Path: name, Err: err}
	}
	var lockErr error
	err = raw.Control(func(fd uintptr) {
		for {
			lockErr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB)
			if lockErr != unix.EINTR {
				return
			}
		}
	})
	if err == nil {
		err = lockErr
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		err = ErrLocked
	}
	if err != nil {
		f.Close()
		return nil, &os.PathError{Op: "lock", Path: name, Err: err}
	}
	return osFile{f}, nil
}

func (osFS) Stat(name string) (int64, error) {
	info, err := os.Stat(name)
	if err != nil {
		return 0, err
	}
	return info.Size(), nil
}

type osFile struct{ f *os.File }

func (o osFile) ReadAt(p []byte, off int64) (int, error) { return o.f.ReadAt(p, off) }
func (o osFile) Write(p []byte) (int, error)             { return o.f.Write(p) }
func (o osFile) Close() error                            { return o.f.Close() }
func (o osFile) Truncate(size int64) error               { return o.f.Truncate(size) }

// SyscallConn gives the file's descriptor to code that sends its bytes to
// a socket without reading them (sendfile); see File.
func (o osFile) SyscallConn() (syscall.RawConn, error) { return o.f.SyscallConn() }

// Sync uses fdatasync: the log only needs data and size durable, not times.
// It goes through SyscallConn rather than Fd so the file stays in the
// runtime's normal mode.
func (o osFile) Sync() error {
	raw, err := o.f.SyscallConn()
	if err != nil {
		return fmt.Errorf("sync %s: %w", o.f.Name(), err)
	}
	var syncErr error
	err = raw.Control(func(fd uintptr) {
		for {
			syncErr = unix.Fdatasync(int(fd))
			if syncErr != unix.EINTR {
				return
			}
		}
	})
	if err == nil {
		err = syncErr
	}
	if err != nil {
		return &os.PathError{Op: "fdatasync", Path: o.f.Name(), Err: err}
	}
	return nil
}

// StartWriteback starts writeback of the range without waiting for it.
// Its error is dropped: it is a hint, and a failed writeback of these pages
// is reported by the next fdatasync, which is what decides durability.
func (o osFile) StartWriteback(offset, length int64) {
	raw, err := o.f.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = unix.SyncFileRange(int(fd), offset, length, unix.SYNC_FILE_RANGE_WRITE)
	})
}

func (o osFile) Size() (int64, error) {
	info, err := o.f.Stat()
	if err != nil {
		return 0, err
	}
	return info.Size(), nil
}

// IsOS reports whether fsys is the operating system's filesystem, where
// other stores (the stream index) may keep files beside the log.
func IsOS(fsys FS) bool {
	_, ok := fsys.(osFS)
	return ok
}
