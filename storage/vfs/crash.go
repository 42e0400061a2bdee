package vfs

import (
	"maps"
	"math/rand/v2"
	"slices"
)

// CrashFS is an in-memory filesystem that can simulate a power cut. It keeps,
// for every file, the content made durable by the last File.Sync and, for
// every directory, the entries made durable by the last FS.SyncDir of that
// directory: a created, renamed or removed entry survives a crash only once
// its parent directory was synced, and a file's data only once the file was
// synced. The root directory always survives.
//
// It is safe for concurrent use.
type CrashFS struct {
	memFS
}

// NewCrashFS returns an empty CrashFS.
func NewCrashFS() *CrashFS {
	return newCrashFS(newDirNode())
}

func newCrashFS(root *memNode) *CrashFS {
	c := &CrashFS{}
	c.root = root
	c.tracking = true
	return c
}

// CrashOptions says what a simulated power cut leaves behind.
type CrashOptions struct {
	// Rand drives the choices below; it is required when TearUnsynced is set.
	// The same durable state crashed with the same seed tears the same way.
	Rand *rand.Rand
	// TearUnsynced keeps, for each file with unsynced appended bytes, a random
	// prefix of them (possibly all or none), sometimes followed by a few
	// garbage bytes: what a power cut in the middle of a write can leave. A
	// file truncated since its last Sync comes back either as it was synced
	// or truncated with a random prefix of what was appended since.
	// Without TearUnsynced every file comes back exactly as last synced.
	TearUnsynced bool
}

// garbageBytesMax bounds the garbage a torn write leaves after the kept prefix.
const garbageBytesMax = 16

// Crash returns a new, independent filesystem holding only the state that
// was durable at the moment of the call (see CrashOptions for torn writes).
// The result is itself a CrashFS in which everything is durable, so a test can
// keep working on it and crash it again. The receiver is left unchanged; a
// test should stop using it.
func (c *CrashFS) Crash(opts CrashOptions) *CrashFS {
	if opts.TearUnsynced && opts.Rand == nil {
		panic("vfs: CrashOptions.TearUnsynced needs Rand")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	root := c.cloneDurable(c.root, opts)
	return newCrashFS(root)
}

// cloneDurable copies the durable part of a directory tree. The caller holds c.mu.
//
// It visits entries in name order, never in map order: the torn writes draw
// from opts.Rand, and a seed must tear every file the same way on every run.
func (c *CrashFS) cloneDurable(dir *memNode, opts CrashOptions) *memNode {
	clone := newDirNode()
	for _, name := range slices.Sorted(maps.Keys(dir.durableChildren)) {
		child := dir.durableChildren[name]
		var node *memNode
		if child.dir {
			node = c.cloneDurable(child, opts)
		} else {
			node = durableFile(child, opts)
		}
		clone.children[name] = node
		clone.durableChildren[name] = node
	}
	return clone
}

// durableFile returns a new node with what a crash leaves of file n; all of
// it is synced in the new filesystem.
func durableFile(n *memNode, opts CrashOptions) *memNode {
	n.dataMu.RLock()
	defer n.dataMu.RUnlock()
	content := append([]byte(nil), n.synced...)
	if opts.TearUnsynced {
		content = tear(n, content, opts.Rand)
	}
	return &memNode{data: content, synced: append([]byte(nil), content...), syncedPrefix: len(content)}
}

// tear applies a torn write to the synced content of n. The caller holds n.dataMu.
func tear(n *memNode, synced []byte, rng *rand.Rand) []byte {
	truncatedSinceSync := n.syncedPrefix < len(n.synced)
	if truncatedSinceSync && rng.IntN(2) == 0 {
		return synced // the truncation never reached the disk
	}
	unsynced := n.data[n.syncedPrefix:]
	if len(unsynced) == 0 {
		return append(synced[:0:0], n.data...)
	}
	kept := rng.IntN(len(unsynced) + 1)
	content := append(append([]byte(nil), n.data[:n.syncedPrefix]...), unsynced[:kept]...)
	if rng.IntN(4) == 0 {
		garbage := make([]byte, 1+rng.IntN(garbageBytesMax))
		for i := range garbage {
			garbage[i] = byte(rng.UintN(256))
		}
		content = append(content, garbage...)
	}
	return content
}
