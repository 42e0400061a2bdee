package vfs

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
)

// File is an open file. Writes always append at the end of the file.
// A file of the operating system's filesystem is also a syscall.Conn, so
// that its bytes can go to a socket without passing through user memory
// (sendfile); other implementations, and wrappers that inject faults, are
// not, and their readers copy.
type File interface {
	// ReadAt is safe to call concurrently with Write and with other ReadAt calls.
	io.ReaderAt
	// Write appends p at the end of the file. A write that fails part-way may
	// leave a prefix of p in the file; the returned count says how much.
	io.Writer
	io.Closer
	// Sync makes the file's data and size durable when it returns nil
	// (fdatasync on the OS filesystem). After a failed Sync nothing written
	// since the previous successful Sync can be trusted to be durable.
	Sync() error
	// Truncate changes the size of the file; later writes append at the new end.
	Truncate(size int64) error
	// Size returns the current size of the file in bytes.
	Size() (int64, error)
}

// WritebackStarter is a File that can start writing a range of its data to
// the device without waiting for it: sync_file_range(SYNC_FILE_RANGE_WRITE)
// on the OS filesystem. It makes nothing durable and promises nothing; a
// log calls it after each append so that the Sync that follows finds most
// of the data already on its way and returns sooner.
type WritebackStarter interface {
	StartWriteback(offset, length int64)
}

// StartWriteback asks f to start writing back [offset, offset+length) when
// it can (a WritebackStarter), and does nothing otherwise: the in-memory and
// fault-injecting files have no device to start.
func StartWriteback(f File, offset, length int64) {
	if w, ok := f.(WritebackStarter); ok {
		w.StartWriteback(offset, length)
	}
}

// FS is a filesystem. Creating, renaming and removing an entry is durable only
// after SyncDir of the directory holding it.
type FS interface {
	// Create creates name, or truncates it when it exists, and opens it for
	// reading and appending.
	Create(name string) (File, error)
	// OpenAppend opens an existing file for reading and appending.
	OpenAppend(name string) (File, error)
	// Open opens an existing file read-only.
	Open(name string) (File, error)
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// RemoveAll removes name and everything below it; a missing name is not an error.
	RemoveAll(name string) error
	// Rename renames oldname to newname, replacing newname if it is a file.
	Rename(oldname, newname string) error
	// MkdirAll creates dir and any missing parents.
	MkdirAll(dir string) error
	// List returns the names (not paths) of the entries in dir, sorted.
	List(dir string) ([]string, error)
	// SyncDir makes the creations, renames and removals of entries in dir durable.
	SyncDir(dir string) error
	// Stat returns the size of name. A missing name gives an error satisfying
	// errors.Is(err, fs.ErrNotExist).
	Stat(name string) (sizeBytes int64, err error)
	// Lock opens name, creating it when missing, and takes an exclusive lock
	// on it that lasts until the returned file is closed or the process
	// exits. The lock excludes every other Lock of name, in this process or
	// another; a lock held elsewhere gives an error satisfying
	// errors.Is(err, ErrLocked). The file is open for reading and appending,
	// so the holder can record who it is; other opens of it are not blocked.
	Lock(name string) (File, error)
}

// ErrLocked: another holder has the lock Lock asked for.
var ErrLocked = errors.New("locked by another holder")

// tempSuffix marks the temporary file WriteFileAtomic writes before renaming
// it into place. A file ending in it is garbage after a crash.
const tempSuffix = ".tmp"

// TempName returns the name WriteFileAtomic uses for the temporary copy of name,
// so that recovery code can recognise and remove leftovers.
func TempName(name string) string { return name + tempSuffix }

// WriteFileAtomic replaces name with data so that after a crash name holds
// either its old content or data, never a mixture: it writes a temporary file,
// syncs it, renames it over name and syncs the directory.
func WriteFileAtomic(fsys FS, name string, data []byte) error {
	temp := TempName(name)
	f, err := fsys.Create(temp)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	err = writeAndSync(f, data)
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		// The temporary file is garbage; removing it is best effort because
		// the caller already has the error that matters.
		_ = fsys.Remove(temp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := fsys.Rename(temp, name); err != nil {
		_ = fsys.Remove(temp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := fsys.SyncDir(filepath.Dir(name)); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func writeAndSync(f File, data []byte) error {
	n, err := f.Write(data)
	if err != nil {
		return err
	}
	if n != len(data) {
		return io.ErrShortWrite
	}
	return f.Sync()
}

// ReadFile returns the whole content of name.
func ReadFile(fsys FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	data := make([]byte, size)
	n, err := f.ReadAt(data, 0)
	if err != nil && !(errors.Is(err, io.EOF) && n == len(data)) {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return data, nil
}
