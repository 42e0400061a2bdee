package raftlog

import (
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// entryCacheBytes bounds the data bytes of the entries a Log keeps in
// memory after appending them. Raft reads every entry back once it is
// committed, to apply it, and a leader reads it again for each follower;
// at those reads the entry was appended moments ago. From the segments
// each such read counts forward from the nearest anchor over whole chunks,
// which cost most of the replicated write path's CPU. 16 MiB holds
// hundreds of the batches of a busy partition (several round trips of a
// follower that keeps up) at a bounded cost per log; a follower further
// behind is served from the segments.
const entryCacheBytes = 16 << 20

// entryCacheBudget is the bound the Logs use: entryCacheBytes, varied by
// the tests (0 disables the cache, a tiny bound forces evictions).
var entryCacheBudget = entryCacheBytes

// entryCache holds the last entries appended, consecutive and ending at
// the Log's last entry, exactly as Entries would build them from the
// segments and raft-meta. Invariants, kept under the Log's mu: ents[k] is
// entry first+k; when ents is not empty, its last entry is the Log's last
// one (every append adds at the end, a truncation drops at and above the
// cut, a compaction at and below the compaction point, an install
// everything); bytes is the sum of their costs (Data plus a fixed overhead), at most
// the budget
// (the oldest go first). The entries and their Data are never mutated:
// Entries hands out copies of the entries sharing their Data, which no
// reader changes either.
type entryCache struct {
	first uint64
	ents  []*raftpb.Entry
	bytes int
}

// add puts entry e, appended after the cached ones, at the end and evicts
// the oldest beyond the budget. An entry that does not follow the cached
// ones (there is no such append) restarts the cache rather than breaking
// its order.
func (c *entryCache) add(e *raftpb.Entry) {
	budget := entryCacheBudget
	if cost(e) > budget {
		c.clear()
		return
	}
	if len(c.ents) > 0 && e.GetIndex() != c.first+uint64(len(c.ents)) {
		c.clear()
	}
	if len(c.ents) == 0 {
		c.first = e.GetIndex()
	}
	c.ents = append(c.ents, e)
	c.bytes += cost(e)
	drop, left := 0, c.bytes
	for left > budget {
		left -= cost(c.ents[drop])
		drop++
	}
	c.dropFront(drop)
}

// entryOverheadBytes is what an entry costs the budget beside its Data, so
// that entries without data (term starts, no-ops) are bounded too.
const entryOverheadBytes = 64

// cost is what entry e counts against the budget.
func cost(e *raftpb.Entry) int { return len(e.GetData()) + entryOverheadBytes }

// dropFront forgets the n oldest entries.
func (c *entryCache) dropFront(n int) {
	if n == 0 {
		return
	}
	if n >= len(c.ents) {
		c.clear()
		return
	}
	for _, e := range c.ents[:n] {
		c.bytes -= cost(e)
	}
	// Free them for the collector: the backing array lives on until
	// append moves it.
	clear(c.ents[:n])
	c.ents = c.ents[n:]
	c.first += uint64(n)
}

// truncateFrom forgets the entries at and above index (a conflict cut).
func (c *entryCache) truncateFrom(index uint64) {
	if len(c.ents) == 0 || index >= c.first+uint64(len(c.ents)) {
		return
	}
	if index <= c.first {
		c.clear()
		return
	}
	keep := int(index - c.first)
	for _, e := range c.ents[keep:] {
		c.bytes -= cost(e)
	}
	clear(c.ents[keep:])
	c.ents = c.ents[:keep]
}

// compactTo forgets the entries at and below index (a compaction).
func (c *entryCache) compactTo(index uint64) {
	if len(c.ents) == 0 || index < c.first {
		return
	}
	c.dropFront(int(min(index-c.first+1, uint64(len(c.ents)))))
}

// clear forgets every entry.
func (c *entryCache) clear() {
	clear(c.ents)
	c.ents, c.bytes, c.first = c.ents[:0], 0, 0
}

// entries returns copies of entries [lo, hi), sharing their Data, while
// their encoded size stays within maxSize (at least one), and true, when
// the cache holds entry lo and every entry up to hi or the size limit;
// false otherwise (the caller reads the segments).
func (c *entryCache) entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, bool) {
	end := c.first + uint64(len(c.ents))
	if len(c.ents) == 0 || lo < c.first || hi > end {
		return nil, false
	}
	out := make([]*raftpb.Entry, 0, min(hi-lo, 64))
	var size uint64
	for i := lo; i < hi; i++ {
		e := c.ents[i-c.first]
		size += uint64(proto.Size(e))
		if len(out) > 0 && size > maxSize {
			break
		}
		out = append(out, copyEntry(e))
	}
	return out, true
}

// data returns the Data of entry index when the cache holds it: shared
// with the cache, never to be changed.
func (c *entryCache) data(index uint64) ([]byte, bool) {
	if len(c.ents) == 0 || index < c.first || index >= c.first+uint64(len(c.ents)) {
		return nil, false
	}
	return c.ents[index-c.first].GetData(), true
}

// copyEntry is e in an Entry of its own, sharing its Data: raft, the
// replica and the state machines only read an entry's Data (raft's own
// MemoryStorage hands out the very entries it holds), and neither does
// the cache change it, so the bytes need no copy; a copy of each entry
// read back to apply cost a tenth of the one-voter write path's CPU with
// 1 MiB batches.
func copyEntry(e *raftpb.Entry) *raftpb.Entry {
	c := &raftpb.Entry{Term: proto.Uint64(e.GetTerm()), Index: proto.Uint64(e.GetIndex()), Data: e.Data}
	if e.Type != nil {
		c.Type = e.GetType().Enum()
	}
	return c
}
