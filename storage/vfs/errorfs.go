package vfs

import (
	"fmt"
	"strings"
	"sync"
)

// Op names a filesystem operation an ErrorFS rule can fail.
type Op int

// Operations. OpOpen covers both Open and OpenAppend, OpRemove covers Remove
// and RemoveAll, OpRename matches when either name contains the rule's path.
const (
	OpCreate Op = iota + 1
	OpOpen
	OpRead
	OpWrite
	OpSync
	OpTruncate
	OpSize
	OpClose
	OpRemove
	OpRename
	OpMkdirAll
	OpList
	OpSyncDir
	OpStat
	OpLock
)

var opNames = map[Op]string{
	OpCreate: "create", OpOpen: "open", OpRead: "read", OpWrite: "write", OpSync: "sync",
	OpTruncate: "truncate", OpSize: "size", OpClose: "close", OpRemove: "remove",
	OpRename: "rename", OpMkdirAll: "mkdirall", OpList: "list", OpSyncDir: "syncdir", OpStat: "stat", OpLock: "lock",
}

func (o Op) String() string {
	if name, ok := opNames[o]; ok {
		return name
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Rule makes matching calls fail with Err.
type Rule struct {
	Op Op
	// PathContains restricts the rule to names containing it; empty matches all.
	// File operations match on the name the file was opened with.
	PathContains string
	Err          error
	// After is how many matching calls succeed before the rule starts failing
	// every matching call.
	After int
}

// ErrorFS wraps another FS and fails the operations its rules match.
//
// A failing Write behaves like a disk filling up part-way: the first half of
// the buffer (rounded down) reaches the inner file and Write returns that
// count with the rule's error. Callers must therefore cope with a short
// prefix of a failed write being in the file.
//
// A failing Close still closes the inner file, so injected close errors do not
// leak handles.
type ErrorFS struct {
	inner FS
	mu    sync.Mutex
	rules []*ruleState
}

type ruleState struct {
	rule    Rule
	matched int
}

// NewErrorFS returns an ErrorFS with no rules around inner.
func NewErrorFS(inner FS) *ErrorFS { return &ErrorFS{inner: inner} }

// Inject adds a rule and returns a function that removes it.
func (e *ErrorFS) Inject(r Rule) (remove func()) {
	state := &ruleState{rule: r}
	e.mu.Lock()
	e.rules = append(e.rules, state)
	e.mu.Unlock()
	return func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		for i, candidate := range e.rules {
			if candidate == state {
				e.rules = append(e.rules[:i], e.rules[i+1:]...)
				return
			}
		}
	}
}

// check returns the injected error for op on names, or nil.
func (e *ErrorFS) check(op Op, names ...string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, state := range e.rules {
		if state.rule.Op != op || !matchesAny(state.rule.PathContains, names) {
			continue
		}
		state.matched++
		if state.matched > state.rule.After {
			return fmt.Errorf("injected %s error on %s: %w", op, names[0], state.rule.Err)
		}
	}
	return nil
}

func matchesAny(substring string, names []string) bool {
	for _, name := range names {
		if strings.Contains(name, substring) {
			return true
		}
	}
	return false
}

func (e *ErrorFS) Create(name string) (File, error) {
	if err := e.check(OpCreate, name); err != nil {
		return nil, err
	}
	f, err := e.inner.Create(name)
	return e.wrapFile(name, f, err)
}

func (e *ErrorFS) OpenAppend(name string) (File, error) {
	if err := e.check(OpOpen, name); err != nil {
		return nil, err
	}
	f, err := e.inner.OpenAppend(name)
	return e.wrapFile(name, f, err)
}

func (e *ErrorFS) Open(name string) (File, error) {
	if err := e.check(OpOpen, name); err != nil {
		return nil, err
	}
	f, err := e.inner.Open(name)
	return e.wrapFile(name, f, err)
}

func (e *ErrorFS) wrapFile(name string, f File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return &errorFile{fs: e, inner: f, name: name}, nil
}

func (e *ErrorFS) Remove(name string) error {
	if err := e.check(OpRemove, name); err != nil {
		return err
	}
	return e.inner.Remove(name)
}

func (e *ErrorFS) RemoveAll(name string) error {
	if err := e.check(OpRemove, name); err != nil {
		return err
	}
	return e.inner.RemoveAll(name)
}

func (e *ErrorFS) Rename(oldname, newname string) error {
	if err := e.check(OpRename, oldname, newname); err != nil {
		return err
	}
	return e.inner.Rename(oldname, newname)
}

func (e *ErrorFS) MkdirAll(dir string) error {
	if err := e.check(OpMkdirAll, dir); err != nil {
		return err
	}
	return e.inner.MkdirAll(dir)
}

func (e *ErrorFS) List(dir string) ([]string, error) {
	if err := e.check(OpList, dir); err != nil {
		return nil, err
	}
	return e.inner.List(dir)
}

func (e *ErrorFS) SyncDir(dir string) error {
	if err := e.check(OpSyncDir, dir); err != nil {
		return err
	}
	return e.inner.SyncDir(dir)
}

func (e *ErrorFS) Stat(name string) (int64, error) {
	if err := e.check(OpStat, name); err != nil {
		return 0, err
	}
	return e.inner.Stat(name)
}

func (e *ErrorFS) Lock(name string) (File, error) {
	if err := e.check(OpLock, name); err != nil {
		return nil, err
	}
	f, err := e.inner.Lock(name)
	return e.wrapFile(name, f, err)
}

type errorFile struct {
	fs    *ErrorFS
	inner File
	name  string
}

func (f *errorFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.fs.check(OpRead, f.name); err != nil {
		return 0, err
	}
	return f.inner.ReadAt(p, off)
}

func (f *errorFile) Write(p []byte) (int, error) {
	if err := f.fs.check(OpWrite, f.name); err != nil {
		n, innerErr := f.inner.Write(p[:len(p)/2])
		if innerErr != nil {
			return n, innerErr
		}
		return n, err
	}
	return f.inner.Write(p)
}

func (f *errorFile) Close() error {
	err := f.fs.check(OpClose, f.name)
	if closeErr := f.inner.Close(); err == nil {
		err = closeErr
	}
	return err
}

func (f *errorFile) Sync() error {
	if err := f.fs.check(OpSync, f.name); err != nil {
		return err
	}
	return f.inner.Sync()
}

func (f *errorFile) Truncate(size int64) error {
	if err := f.fs.check(OpTruncate, f.name); err != nil {
		return err
	}
	return f.inner.Truncate(size)
}

func (f *errorFile) Size() (int64, error) {
	if err := f.fs.check(OpSize, f.name); err != nil {
		return 0, err
	}
	return f.inner.Size()
}
