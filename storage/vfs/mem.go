package vfs

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// NewMem returns an in-memory filesystem in which every write, create, rename
// and removal is durable as soon as it returns.
func NewMem() FS { return newMemFS(false) }

var (
	errReadOnly = errors.New("file is open read-only")
	errIsDir    = errors.New("is a directory")
	errNotDir   = errors.New("not a directory")
	errNotEmpty = errors.New("directory not empty")
)

// memFS is the in-memory filesystem behind NewMem and CrashFS. With tracking
// on it also records what a power cut would keep (see CrashFS).
type memFS struct {
	mu       sync.Mutex // guards the tree: every children and durableChildren map
	root     *memNode
	tracking bool
}

// memNode is a directory or a file; a renamed file keeps its node, so handles
// opened before a rename or removal keep reading and writing the same data,
// as on unix.
type memNode struct {
	dir bool

	// Directories, guarded by memFS.mu. durableChildren is what SyncDir last
	// saw; only maintained when tracking.
	children        map[string]*memNode
	durableChildren map[string]*memNode

	// Files.
	dataMu sync.RWMutex
	data   []byte
	// synced is the content made durable by the last Sync, and data[:syncedPrefix]
	// is still equal to synced[:syncedPrefix] (a Truncate may have cut into it).
	// Only maintained when tracking.
	synced       []byte
	syncedPrefix int

	// locked is set while a Lock handle is open; guarded by memFS.mu. A crash
	// (CrashFS.Crash) makes new nodes, so locks do not survive it, as a
	// process's locks do not survive its death.
	locked bool
}

func newMemFS(tracking bool) *memFS {
	return &memFS{root: newDirNode(), tracking: tracking}
}

func newDirNode() *memNode {
	return &memNode{dir: true, children: map[string]*memNode{}, durableChildren: map[string]*memNode{}}
}

// split turns a name into its path components; "", ".", "/" are the root.
func split(name string) []string {
	cleaned := strings.Trim(path.Clean("/"+name), "/")
	if cleaned == "" {
		return nil
	}
	return strings.Split(cleaned, "/")
}

// walk returns the node at parts. The caller holds m.mu.
func (m *memFS) walk(parts []string) (*memNode, error) {
	node := m.root
	for _, part := range parts {
		if !node.dir {
			return nil, errNotDir
		}
		child, ok := node.children[part]
		if !ok {
			return nil, fs.ErrNotExist
		}
		node = child
	}
	return node, nil
}

// parent returns the directory holding name and name's last component. The
// caller holds m.mu.
func (m *memFS) parent(name string) (*memNode, string, error) {
	parts := split(name)
	if len(parts) == 0 {
		return nil, "", fs.ErrInvalid // the root has no parent
	}
	dir, err := m.walk(parts[:len(parts)-1])
	if err != nil {
		return nil, "", err
	}
	if !dir.dir {
		return nil, "", errNotDir
	}
	return dir, parts[len(parts)-1], nil
}

func (m *memFS) Create(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.parent(name)
	if err != nil {
		return nil, &fs.PathError{Op: "create", Path: name, Err: err}
	}
	if existing, ok := dir.children[base]; ok {
		if existing.dir {
			return nil, &fs.PathError{Op: "create", Path: name, Err: errIsDir}
		}
		// Truncating an existing file keeps its node, as O_TRUNC keeps the inode.
		existing.truncate(0, m.tracking)
		return &memFile{fs: m, node: existing, name: name}, nil
	}
	node := &memNode{}
	dir.children[base] = node
	return &memFile{fs: m, node: node, name: name}, nil
}

func (m *memFS) Lock(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.parent(name)
	if err != nil {
		return nil, &fs.PathError{Op: "lock", Path: name, Err: err}
	}
	node, ok := dir.children[base]
	switch {
	case !ok:
		node = &memNode{}
		dir.children[base] = node
	case node.dir:
		return nil, &fs.PathError{Op: "lock", Path: name, Err: errIsDir}
	case node.locked:
		return nil, &fs.PathError{Op: "lock", Path: name, Err: ErrLocked}
	}
	node.locked = true
	return &memFile{fs: m, node: node, name: name, unlocks: true}, nil
}

func (m *memFS) OpenAppend(name string) (File, error) { return m.open(name, false) }
func (m *memFS) Open(name string) (File, error)       { return m.open(name, true) }

func (m *memFS) open(name string, readOnly bool) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	node, err := m.walk(split(name))
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if node.dir {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errIsDir}
	}
	return &memFile{fs: m, node: node, name: name, readOnly: readOnly}, nil
}

func (m *memFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.parent(name)
	if err != nil {
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	}
	node, ok := dir.children[base]
	if !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	if node.dir && len(node.children) > 0 {
		return &fs.PathError{Op: "remove", Path: name, Err: errNotEmpty}
	}
	delete(dir.children, base)
	return nil
}

func (m *memFS) RemoveAll(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.parent(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &fs.PathError{Op: "removeall", Path: name, Err: err}
	}
	// Children of a removed directory stay reachable from its node only, so a
	// crash before SyncDir of the parent brings the whole subtree back.
	delete(dir.children, base)
	return nil
}

func (m *memFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	oldDir, oldBase, err := m.parent(oldname)
	if err != nil {
		return &fs.PathError{Op: "rename", Path: oldname, Err: err}
	}
	node, ok := oldDir.children[oldBase]
	if !ok {
		return &fs.PathError{Op: "rename", Path: oldname, Err: fs.ErrNotExist}
	}
	newDir, newBase, err := m.parent(newname)
	if err != nil {
		return &fs.PathError{Op: "rename", Path: newname, Err: err}
	}
	if existing, ok := newDir.children[newBase]; ok && existing.dir {
		return &fs.PathError{Op: "rename", Path: newname, Err: errIsDir}
	}
	delete(oldDir.children, oldBase)
	newDir.children[newBase] = node
	return nil
}

func (m *memFS) MkdirAll(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	node := m.root
	for _, part := range split(dir) {
		child, ok := node.children[part]
		if !ok {
			child = newDirNode()
			node.children[part] = child
		}
		if !child.dir {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: errNotDir}
		}
		node = child
	}
	return nil
}

func (m *memFS) dirNode(op, dir string) (*memNode, error) {
	node, err := m.walk(split(dir))
	if err == nil && !node.dir {
		err = errNotDir
	}
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: dir, Err: err}
	}
	return node, nil
}

func (m *memFS) List(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	node, err := m.dirNode("list", dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(node.children))
	for name := range node.children {
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

func (m *memFS) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	node, err := m.dirNode("syncdir", dir)
	if err != nil {
		return err
	}
	if m.tracking {
		node.durableChildren = make(map[string]*memNode, len(node.children))
		for name, child := range node.children {
			node.durableChildren[name] = child
		}
	}
	return nil
}

func (m *memFS) Stat(name string) (int64, error) {
	m.mu.Lock()
	node, err := m.walk(split(name))
	m.mu.Unlock()
	if err != nil {
		return 0, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	if node.dir {
		return 0, nil
	}
	node.dataMu.RLock()
	defer node.dataMu.RUnlock()
	return int64(len(node.data)), nil
}

// truncate cuts or extends (with zeros) the file's data.
func (n *memNode) truncate(size int64, tracking bool) {
	n.dataMu.Lock()
	defer n.dataMu.Unlock()
	if int(size) <= len(n.data) {
		n.data = n.data[:size]
	} else {
		n.data = append(n.data, make([]byte, int(size)-len(n.data))...)
	}
	if tracking && n.syncedPrefix > int(size) {
		n.syncedPrefix = int(size)
	}
}

// memFile is an open handle on a memNode.
type memFile struct {
	fs       *memFS
	node     *memNode
	name     string
	readOnly bool
	unlocks  bool // the handle Lock returned: closing it releases the lock
	closed   atomic.Bool
}

func (f *memFile) check(op string, write bool) error {
	if f.closed.Load() {
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	}
	if write && f.readOnly {
		return &fs.PathError{Op: op, Path: f.name, Err: errReadOnly}
	}
	return nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrInvalid}
	}
	f.node.dataMu.RLock()
	defer f.node.dataMu.RUnlock()
	if off >= int64(len(f.node.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.node.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	f.node.dataMu.Lock()
	defer f.node.dataMu.Unlock()
	f.node.data = append(f.node.data, p...)
	return len(p), nil
}

func (f *memFile) Close() error {
	if f.closed.Swap(true) {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	if f.unlocks {
		f.fs.mu.Lock()
		f.node.locked = false
		f.fs.mu.Unlock()
	}
	return nil
}

func (f *memFile) Sync() error {
	if err := f.check("sync", false); err != nil {
		return err
	}
	if !f.fs.tracking {
		return nil
	}
	n := f.node
	n.dataMu.Lock()
	defer n.dataMu.Unlock()
	// Only the bytes that changed since the last Sync are copied.
	n.synced = append(n.synced[:n.syncedPrefix], n.data[n.syncedPrefix:]...)
	n.syncedPrefix = len(n.data)
	return nil
}

func (f *memFile) Truncate(size int64) error {
	if err := f.check("truncate", true); err != nil {
		return err
	}
	if size < 0 {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: fs.ErrInvalid}
	}
	f.node.truncate(size, f.fs.tracking)
	return nil
}

func (f *memFile) Size() (int64, error) {
	if err := f.check("size", false); err != nil {
		return 0, err
	}
	f.node.dataMu.RLock()
	defer f.node.dataMu.RUnlock()
	return int64(len(f.node.data)), nil
}
