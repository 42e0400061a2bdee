package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// LossyFS is the operating system's filesystem under one root directory,
// made to lose on a process kill what CrashFS loses on a power cut: the
// bytes appended to a file since its last Sync live only in this process's
// memory, and so do the creations, renames and removals of entries in a
// directory since its last SyncDir. The disk holds exactly the durable
// state at every moment, so SIGKILL of the process leaves behind what a
// power cut of that one machine would. It exists for fault tests of real
// processes; a program that never calls NewLossyFS does not contain it.
//
// How the disk is kept durable-only: every file is one inode, created under
// a staging directory beside the root (root + ".lossy") and hard-linked at
// each place in the tree where it is durable. File.Sync writes the file's
// unsynced bytes to its inode and fdatasyncs it, which every durable link
// sees at once (as CrashFS's durable entries share the synced content of
// their node). SyncDir makes the directory on disk hold the entries it holds
// in memory: it links new and renamed files in, removes what is gone,
// creates new subdirectories with their own durable entries, and fsyncs it.
// A file that is neither reachable nor durable anywhere loses its staging
// link; the staging directory is emptied when the filesystem is opened.
//
// Reads see every write (read-your-writes): the synced part comes from the
// inode, the rest from memory. Names outside the root go to the operating
// system's filesystem unchanged. The file Lock opens is the exception inside
// the root: it is created on disk at once and its data is the operating
// system's, because flock needs the real file and its content (a pid) only
// names the holder.
//
// It is safe for concurrent use.
type LossyFS struct {
	root    string // absolute, clean
	staging string // where every file's inode has its staging link
	nextID  atomic.Uint64

	mu  sync.Mutex // guards the tree: children, durable and diskPaths of every node
	top *lossyNode
}

// lossyNode is a directory or a file of a LossyFS.
type lossyNode struct {
	dir bool

	// Guarded by LossyFS.mu. children is the current view, durable what the
	// last SyncDir saw (as in CrashFS). diskPaths are the absolute paths
	// where the node is on disk: a directory there, or a hard link of the
	// file's inode.
	children  map[string]*lossyNode
	durable   map[string]*lossyNode
	diskPaths map[string]struct{}
	// linked says the file has an entry in the current tree and durableRefs
	// in how many durable entry sets it is, guarded by LossyFS.mu: a file
	// with neither is garbage.
	linked      bool
	durableRefs int

	// Files. stagingPath names the inode. direct marks the lock file, whose
	// data is the operating system's (see LossyFS).
	stagingPath string
	direct      bool
	// syncMu orders Sync and Truncate, the two that change the inode, so a
	// Sync writing outside dataMu never races a truncation.
	syncMu sync.Mutex
	// dataMu guards the three below. The file's content is the inode's first
	// prefix bytes followed by pending; diskSize is the inode's size, larger
	// than prefix after a Truncate that no Sync has made durable yet.
	dataMu   sync.RWMutex
	prefix   int64
	diskSize int64
	pending  []byte
}

func newLossyDir() *lossyNode {
	return &lossyNode{dir: true, children: map[string]*lossyNode{}, durable: map[string]*lossyNode{},
		diskPaths: map[string]struct{}{}}
}

// stagingSuffix names the staging directory beside the root.
const stagingSuffix = ".lossy"

// linkSuffix marks the temporary link SyncDir renames over an entry, so that
// replacing a file on disk is atomic.
const linkSuffix = ".lossy-link"

// NewLossyFS opens a LossyFS rooted at root, creating root when missing.
// What is under root on disk is taken as durable, as after a crash.
func NewLossyFS(root string) (*LossyFS, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("lossyfs root %s: %w", root, err)
	}
	l := &LossyFS{root: abs, staging: abs + stagingSuffix}
	if err := os.MkdirAll(abs, dirPerm); err != nil {
		return nil, fmt.Errorf("lossyfs root: %w", err)
	}
	if err := osFS.SyncDir(osFS{}, filepath.Dir(abs)); err != nil {
		return nil, fmt.Errorf("lossyfs root: %w", err)
	}
	// Staging links left by a killed process are garbage: what is durable
	// is linked in the tree.
	if err := os.RemoveAll(l.staging); err != nil {
		return nil, fmt.Errorf("lossyfs staging: %w", err)
	}
	if err := os.Mkdir(l.staging, dirPerm); err != nil {
		return nil, fmt.Errorf("lossyfs staging: %w", err)
	}
	top, err := l.scan(abs, map[uint64]bool{})
	if err != nil {
		return nil, err
	}
	l.top = top
	return l, nil
}

// scan builds the node of the directory p, everything in it durable.
// inodes holds the inode numbers already seen.
func (l *LossyFS) scan(p string, inodes map[uint64]bool) (*lossyNode, error) {
	entries, err := os.ReadDir(p)
	if err != nil {
		return nil, fmt.Errorf("lossyfs scan: %w", err)
	}
	dir := newLossyDir()
	dir.diskPaths[p] = struct{}{}
	for _, entry := range entries {
		child := filepath.Join(p, entry.Name())
		if strings.HasSuffix(entry.Name(), linkSuffix) {
			// A link a killed SyncDir had not renamed into place yet.
			if err := os.Remove(child); err != nil {
				return nil, fmt.Errorf("lossyfs scan: %w", err)
			}
			continue
		}
		var node *lossyNode
		if entry.IsDir() {
			node, err = l.scan(child, inodes)
		} else {
			node, err = l.scanFile(child, inodes)
		}
		if err != nil {
			return nil, err
		}
		dir.children[entry.Name()] = node
		dir.durable[entry.Name()] = node
	}
	return dir, nil
}

// scanFile makes the node of the file p. A file renamed into a synced
// directory while its old directory was not synced is durable at two
// places, one inode: those are two files after a crash (as CrashFS.Crash
// makes them), so a second link becomes a copy.
func (l *LossyFS) scanFile(p string, inodes map[uint64]bool) (*lossyNode, error) {
	info, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("lossyfs scan: %w", err)
	}
	if stat, ok := info.Sys().(*syscall.Stat_t); ok {
		if inodes[stat.Ino] {
			if err := copyOver(p); err != nil {
				return nil, fmt.Errorf("lossyfs scan: %w", err)
			}
		}
		inodes[stat.Ino] = true
	}
	node := &lossyNode{stagingPath: l.newStagingPath(), linked: true, durableRefs: 1, prefix: info.Size(), diskSize: info.Size(),
		diskPaths: map[string]struct{}{p: {}}}
	if err := os.Link(p, node.stagingPath); err != nil {
		return nil, fmt.Errorf("lossyfs scan: %w", err)
	}
	return node, nil
}

// copyOver replaces p by a durable copy of itself in a new inode.
func copyOver(p string) error {
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	temp := p + linkSuffix
	f, err := openOS(temp, os.O_RDWR|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return err
	}
	err = writeAndSync(f, data)
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = os.Rename(temp, p)
	}
	if err == nil {
		err = osFS{}.SyncDir(filepath.Dir(p))
	}
	return err
}

func (l *LossyFS) newStagingPath() string {
	return filepath.Join(l.staging, strconv.FormatUint(l.nextID.Add(1), 10))
}

// parts returns name's components below the root, or inside false for a
// name outside it.
func (l *LossyFS) parts(name string) (parts []string, inside bool) {
	abs, err := filepath.Abs(name)
	if err != nil {
		return nil, false
	}
	if abs == l.root {
		return nil, true
	}
	rest, ok := strings.CutPrefix(abs, l.root+string(filepath.Separator))
	if !ok {
		return nil, false
	}
	return split(rest), true
}

// walk returns the node at parts. The caller holds l.mu.
func (l *LossyFS) walk(parts []string) (*lossyNode, error) {
	node := l.top
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

// parent returns the directory holding parts and its last component. The
// caller holds l.mu.
func (l *LossyFS) parent(parts []string) (*lossyNode, string, error) {
	if len(parts) == 0 {
		return nil, "", fs.ErrInvalid // the root has no parent here
	}
	dir, err := l.walk(parts[:len(parts)-1])
	if err != nil {
		return nil, "", err
	}
	if !dir.dir {
		return nil, "", errNotDir
	}
	return dir, parts[len(parts)-1], nil
}

func (l *LossyFS) Create(name string) (File, error) {
	parts, inside := l.parts(name)
	if !inside {
		return osFS{}.Create(name)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	dir, base, err := l.parent(parts)
	if err != nil {
		return nil, &fs.PathError{Op: "create", Path: name, Err: err}
	}
	if existing, ok := dir.children[base]; ok {
		if existing.dir {
			return nil, &fs.PathError{Op: "create", Path: name, Err: errIsDir}
		}
		if existing.direct {
			return osFS{}.Create(existing.stagingPath)
		}
		// O_TRUNC keeps the inode; the truncation is durable at the next Sync.
		existing.truncate(0)
		return l.openHandle(existing, name, false)
	}
	node := &lossyNode{stagingPath: l.newStagingPath(), linked: true, diskPaths: map[string]struct{}{}}
	f, err := os.OpenFile(node.stagingPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return nil, &fs.PathError{Op: "create", Path: name, Err: err}
	}
	dir.children[base] = node
	return &lossyFile{node: node, f: f, name: name}, nil
}

func (l *LossyFS) openHandle(node *lossyNode, name string, readOnly bool) (File, error) {
	// Even a read-only handle writes the inode when it syncs what other
	// handles appended; read-only is enforced here instead.
	f, err := os.OpenFile(node.stagingPath, os.O_RDWR, filePerm)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &lossyFile{node: node, f: f, name: name, readOnly: readOnly}, nil
}

func (l *LossyFS) OpenAppend(name string) (File, error) { return l.open(name, false) }
func (l *LossyFS) Open(name string) (File, error)       { return l.open(name, true) }

func (l *LossyFS) open(name string, readOnly bool) (File, error) {
	parts, inside := l.parts(name)
	if !inside {
		if readOnly {
			return osFS{}.Open(name)
		}
		return osFS{}.OpenAppend(name)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	node, err := l.walk(parts)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if node.dir {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errIsDir}
	}
	if node.direct {
		if readOnly {
			return osFS{}.Open(node.stagingPath)
		}
		return osFS{}.OpenAppend(node.stagingPath)
	}
	return l.openHandle(node, name, readOnly)
}

// Lock creates the lock file on disk at once, durably linked, and locks its
// inode with flock: another process locking the same path locks the same
// inode.
func (l *LossyFS) Lock(name string) (File, error) {
	parts, inside := l.parts(name)
	if !inside {
		return osFS{}.Lock(name)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	dir, base, err := l.parent(parts)
	if err != nil {
		return nil, &fs.PathError{Op: "lock", Path: name, Err: err}
	}
	node, ok := dir.children[base]
	if ok {
		if node.dir {
			return nil, &fs.PathError{Op: "lock", Path: name, Err: errIsDir}
		}
		if !node.direct {
			node.dataMu.Lock()
			clean := len(node.pending) == 0 && node.prefix == node.diskSize
			node.direct = clean
			node.dataMu.Unlock()
			if !clean {
				return nil, &fs.PathError{Op: "lock", Path: name, Err: errors.New("lossyfs: lock of a file with unsynced data")}
			}
		}
		return osFS{}.Lock(node.stagingPath)
	}
	realPath := filepath.Join(l.root, filepath.Join(parts...))
	if _, onDisk := dir.diskPaths[filepath.Dir(realPath)]; !onDisk {
		return nil, &fs.PathError{Op: "lock", Path: name, Err: errors.New("lossyfs: lock in a directory not yet durable")}
	}
	f, err := osFS{}.Lock(realPath)
	if err != nil {
		return nil, err
	}
	node = &lossyNode{stagingPath: l.newStagingPath(), linked: true, durableRefs: 1, direct: true, diskPaths: map[string]struct{}{realPath: {}}}
	if err := os.Link(realPath, node.stagingPath); err != nil {
		f.Close()
		return nil, &fs.PathError{Op: "lock", Path: name, Err: err}
	}
	dir.children[base] = node
	dir.durable[base] = node
	return f, nil
}

func (l *LossyFS) Remove(name string) error {
	parts, inside := l.parts(name)
	if !inside {
		return osFS{}.Remove(name)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	dir, base, err := l.parent(parts)
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
	l.unlink(node)
	return nil
}

func (l *LossyFS) RemoveAll(name string) error {
	parts, inside := l.parts(name)
	if !inside {
		return osFS{}.RemoveAll(name)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	dir, base, err := l.parent(parts)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &fs.PathError{Op: "removeall", Path: name, Err: err}
	}
	if node, ok := dir.children[base]; ok {
		// The subtree stays on disk until SyncDir of dir, as in CrashFS.
		delete(dir.children, base)
		l.unlink(node)
	}
	return nil
}

// unlink records that node and everything below it left the current tree,
// and drops the staging links nothing needs any more. The caller holds l.mu.
func (l *LossyFS) unlink(node *lossyNode) {
	if node.dir {
		for _, child := range node.children {
			l.unlink(child)
		}
		return
	}
	node.linked = false
	l.collect(node)
}

// collect removes the staging link of a file neither in the tree nor
// durable anywhere. Open handles keep the inode, as on unix. A file under a
// removed directory keeps its link until the next open. The caller holds l.mu.
func (l *LossyFS) collect(node *lossyNode) {
	if node.dir || node.linked || node.durableRefs > 0 || node.stagingPath == "" {
		return
	}
	// Best effort: a leftover link is garbage the next open removes.
	_ = os.Remove(node.stagingPath)
	node.stagingPath = ""
}

func (l *LossyFS) Rename(oldname, newname string) error {
	oldParts, oldInside := l.parts(oldname)
	newParts, newInside := l.parts(newname)
	if !oldInside && !newInside {
		return osFS{}.Rename(oldname, newname)
	}
	if !oldInside || !newInside {
		return &fs.PathError{Op: "rename", Path: oldname, Err: errors.New("lossyfs: rename across the root")}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	oldDir, oldBase, err := l.parent(oldParts)
	if err != nil {
		return &fs.PathError{Op: "rename", Path: oldname, Err: err}
	}
	node, ok := oldDir.children[oldBase]
	if !ok {
		return &fs.PathError{Op: "rename", Path: oldname, Err: fs.ErrNotExist}
	}
	newDir, newBase, err := l.parent(newParts)
	if err != nil {
		return &fs.PathError{Op: "rename", Path: newname, Err: err}
	}
	existing, replaces := newDir.children[newBase]
	if replaces && existing.dir {
		return &fs.PathError{Op: "rename", Path: newname, Err: errIsDir}
	}
	delete(oldDir.children, oldBase)
	newDir.children[newBase] = node
	if replaces && existing != node {
		l.unlink(existing)
	}
	return nil
}

func (l *LossyFS) MkdirAll(dir string) error {
	parts, inside := l.parts(dir)
	if !inside {
		return osFS{}.MkdirAll(dir)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	node := l.top
	for _, part := range parts {
		child, ok := node.children[part]
		if !ok {
			child = newLossyDir()
			node.children[part] = child
		}
		if !child.dir {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: errNotDir}
		}
		node = child
	}
	return nil
}

func (l *LossyFS) dirNode(op, dir string, parts []string) (*lossyNode, error) {
	node, err := l.walk(parts)
	if err == nil && !node.dir {
		err = errNotDir
	}
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: dir, Err: err}
	}
	return node, nil
}

func (l *LossyFS) List(dir string) ([]string, error) {
	parts, inside := l.parts(dir)
	if !inside {
		return osFS{}.List(dir)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	node, err := l.dirNode("list", dir, parts)
	if err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(node.children)), nil
}

func (l *LossyFS) Stat(name string) (int64, error) {
	parts, inside := l.parts(name)
	if !inside {
		return osFS{}.Stat(name)
	}
	l.mu.Lock()
	node, err := l.walk(parts)
	l.mu.Unlock()
	if err != nil {
		return 0, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	if node.dir {
		return 0, nil
	}
	return node.size()
}

// SyncDir makes the directory hold on disk, at every place it is durable,
// the entries it holds in memory. A directory not on disk yet only records
// them: they reach the disk with it, when its parent is synced.
func (l *LossyFS) SyncDir(dir string) error {
	parts, inside := l.parts(dir)
	if !inside {
		return osFS{}.SyncDir(dir)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	node, err := l.dirNode("syncdir", dir, parts)
	if err != nil {
		return err
	}
	for _, p := range slices.Sorted(maps.Keys(node.diskPaths)) {
		if err := l.applyEntries(node, p); err != nil {
			return fmt.Errorf("sync dir %s: %w", dir, err)
		}
	}
	old := node.durable
	node.durable = maps.Clone(node.children)
	for _, child := range node.durable {
		child.durableRefs++
	}
	for _, child := range old {
		child.durableRefs--
		l.collect(child)
	}
	return nil
}

// applyEntries changes the directory on disk at p from node's durable
// entries to its current ones and fsyncs it. The caller holds l.mu.
func (l *LossyFS) applyEntries(node *lossyNode, p string) error {
	for _, name := range slices.Sorted(maps.Keys(node.durable)) {
		old := node.durable[name]
		current, ok := node.children[name]
		if ok && current == old {
			continue
		}
		l.forgetDisk(old, filepath.Join(p, name))
		// A file replaced by a file is renamed over below, atomically as
		// on a real disk; anything else goes first.
		if !ok || old.dir || current.dir {
			if err := os.RemoveAll(filepath.Join(p, name)); err != nil {
				return err
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(node.children)) {
		current := node.children[name]
		if node.durable[name] == current {
			continue
		}
		if err := l.materialize(current, filepath.Join(p, name)); err != nil {
			return err
		}
	}
	return osFS{}.SyncDir(p)
}

// materialize puts node on disk at p with its durable content: a link of a
// file's inode, or a directory holding the durable entries of one. The
// caller holds l.mu.
func (l *LossyFS) materialize(node *lossyNode, p string) error {
	if !node.dir {
		if node.stagingPath == "" {
			return fmt.Errorf("lossyfs: %s has no inode", p)
		}
		link := p + linkSuffix
		if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.Link(node.stagingPath, link); err != nil {
			return err
		}
		if err := os.Rename(link, p); err != nil {
			return err
		}
		node.diskPaths[p] = struct{}{}
		return nil
	}
	if err := os.Mkdir(p, dirPerm); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(node.durable)) {
		if err := l.materialize(node.durable[name], filepath.Join(p, name)); err != nil {
			return err
		}
	}
	node.diskPaths[p] = struct{}{}
	return osFS{}.SyncDir(p)
}

// forgetDisk records that node, and what is durable below it, is no longer
// on disk at p. The caller holds l.mu.
func (l *LossyFS) forgetDisk(node *lossyNode, p string) {
	delete(node.diskPaths, p)
	if node.dir {
		for name, child := range node.durable {
			l.forgetDisk(child, filepath.Join(p, name))
		}
	}
}

// truncate cuts or extends (with zeros) the file's content in memory; the
// inode follows at the next Sync.
func (n *lossyNode) truncate(size int64) {
	n.syncMu.Lock()
	defer n.syncMu.Unlock()
	n.dataMu.Lock()
	defer n.dataMu.Unlock()
	switch end := n.prefix + int64(len(n.pending)); {
	case size <= n.prefix:
		n.prefix, n.pending = size, nil
	case size <= end:
		n.pending = n.pending[:size-n.prefix]
	default:
		n.pending = append(n.pending, make([]byte, size-end)...)
	}
}

func (n *lossyNode) size() (int64, error) {
	if n.direct {
		return osFS{}.Stat(n.stagingPath)
	}
	n.dataMu.RLock()
	defer n.dataMu.RUnlock()
	return n.prefix + int64(len(n.pending)), nil
}

// lossyFile is an open handle on a file of a LossyFS, with its own
// descriptor of the file's inode.
type lossyFile struct {
	node     *lossyNode
	f        *os.File
	name     string
	readOnly bool
	closed   atomic.Bool
}

func (f *lossyFile) check(op string, write bool) error {
	if f.closed.Load() {
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	}
	if write && f.readOnly {
		return &fs.PathError{Op: op, Path: f.name, Err: errReadOnly}
	}
	return nil
}

func (f *lossyFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrInvalid}
	}
	n := f.node
	n.dataMu.RLock()
	defer n.dataMu.RUnlock()
	end := n.prefix + int64(len(n.pending))
	if off >= end {
		return 0, io.EOF
	}
	read := 0
	if off < n.prefix {
		// The inode holds at least prefix bytes: a Sync shrinks it only to
		// prefix and writes beyond it.
		fromDisk := p[:min(int64(len(p)), n.prefix-off)]
		got, err := f.f.ReadAt(fromDisk, off)
		if got < len(fromDisk) {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return got, &fs.PathError{Op: "read", Path: f.name, Err: err}
		}
		read = got
	}
	if read < len(p) {
		read += copy(p[read:], n.pending[off+int64(read)-n.prefix:])
	}
	if read < len(p) {
		return read, io.EOF
	}
	return read, nil
}

func (f *lossyFile) Write(p []byte) (int, error) {
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	f.node.dataMu.Lock()
	defer f.node.dataMu.Unlock()
	f.node.pending = append(f.node.pending, p...)
	return len(p), nil
}

// Sync writes the unsynced bytes to the inode and fdatasyncs it. Writes go
// on meanwhile: only the bytes pending when it started are made durable,
// and readers keep reading them from memory until the inode has them.
func (f *lossyFile) Sync() error {
	if err := f.check("sync", false); err != nil {
		return err
	}
	n := f.node
	n.syncMu.Lock()
	defer n.syncMu.Unlock()
	n.dataMu.RLock()
	prefix, diskSize := n.prefix, n.diskSize
	// Writes only append, and Truncate waits for syncMu, so these bytes stay
	// as they are while the lock is released.
	unsynced := n.pending[:len(n.pending):len(n.pending)]
	n.dataMu.RUnlock()
	if prefix < diskSize {
		if err := f.f.Truncate(prefix); err != nil {
			return &fs.PathError{Op: "sync", Path: f.name, Err: err}
		}
	}
	if len(unsynced) > 0 {
		if _, err := f.f.WriteAt(unsynced, prefix); err != nil {
			return &fs.PathError{Op: "sync", Path: f.name, Err: err}
		}
	}
	if err := (osFile{f.f}).Sync(); err != nil {
		return err
	}
	n.dataMu.Lock()
	defer n.dataMu.Unlock()
	if rest := n.pending[len(unsynced):]; len(rest) > 0 {
		n.pending = append([]byte(nil), rest...)
	} else {
		n.pending = nil // let the buffer go: unsynced data is what memory holds
	}
	n.prefix = prefix + int64(len(unsynced))
	n.diskSize = n.prefix
	return nil
}

func (f *lossyFile) Truncate(size int64) error {
	if err := f.check("truncate", true); err != nil {
		return err
	}
	if size < 0 {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: fs.ErrInvalid}
	}
	f.node.truncate(size)
	return nil
}

func (f *lossyFile) Size() (int64, error) {
	if err := f.check("size", false); err != nil {
		return 0, err
	}
	return f.node.size()
}

func (f *lossyFile) Close() error {
	if f.closed.Swap(true) {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	return f.f.Close()
}
