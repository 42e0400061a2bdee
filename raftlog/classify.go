package raftlog

import (
	"errors"
	"fmt"
	"math"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/batch"
)

// errRefusedEntry: Append was given an entry this log could not give back
// to raft as it came (a shape raft never makes) or that breaks the rules
// of a Raft log (a gap, a term moving back, a batch not stamped with its
// term or not starting at the log end). Nothing was written.
var errRefusedEntry = errors.New("raftlog: entry refused")

// planned is one entry of an Append, checked and classified.
type planned struct {
	ent *raftpb.Entry
	// data: the entry is a RecordBatch, stored in the segments; header is
	// its header. Otherwise it is a non-data entry of kind kind, stored in
	// raft-meta.
	data   bool
	kind   EntryKind
	header batch.Header
	// nextOffset is the Kafka offset the entry begins at.
	nextOffset int64
}

// entryDataBytesMax bounds the data of a non-data entry so that its Entry
// record (type and a 29-byte body before the data) stays within
// recordBytesMax.
const entryDataBytesMax = recordBytesMax - 1 - 29

// planAppend checks and classifies ents, whose first entry follows an
// entry of term termBefore and begins at Kafka offset begin. It is pure:
// the caller supplies what the log knows.
func planAppend(ents []*raftpb.Entry, termBefore uint64, begin int64) ([]planned, error) {
	out := make([]planned, 0, len(ents))
	first := ents[0].GetIndex()
	term, next := termBefore, begin
	for k, e := range ents {
		if want := first + uint64(k); e.GetIndex() != want {
			return nil, fmt.Errorf("entry %d at position %d of entries from %d: %w", e.GetIndex(), k, first, errRefusedEntry)
		}
		p, err := classify(e, term)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", e.GetIndex(), err)
		}
		p.nextOffset = next
		if p.data {
			if p.header.BaseOffset != next {
				return nil, fmt.Errorf("entry %d: batch at base offset %d, the log continues at %d: %w",
					e.GetIndex(), p.header.BaseOffset, next, errRefusedEntry)
			}
			next = p.header.NextOffset()
		}
		term = e.GetTerm()
		out = append(out, p)
	}
	return out, nil
}

// classify says how entry e is stored, given the term in force before it.
// An empty normal entry is classified by its term (design §1.5): above the
// term in force it is a new leader's first entry (KindEmpty), equal to it
// raft's stand-in for a refused conf change (KindNoop). Each kind is given
// back with the Type raft gave it, so an entry of another shape is refused
// rather than changed. Only a term's first entry may raise the term.
func classify(e *raftpb.Entry, termInForce uint64) (planned, error) {
	term := e.GetTerm()
	switch {
	case term < termInForce:
		return planned{}, fmt.Errorf("term %d after term %d: %w", term, termInForce, errRefusedEntry)
	case term > math.MaxInt32:
		// Terms are Kafka leader epochs, int32 (design §10.21).
		return planned{}, fmt.Errorf("term %d above the largest epoch: %w", term, errRefusedEntry)
	}
	p := planned{ent: e}
	switch {
	case e.Type != nil && e.GetType() == raftpb.EntryConfChange:
		p.kind = KindConfChange
	case e.Type != nil && e.GetType() == raftpb.EntryConfChangeV2:
		p.kind = KindConfChangeV2
	case e.Type != nil && e.GetType() != raftpb.EntryNormal:
		return planned{}, fmt.Errorf("entry type %d: %w", e.GetType(), errRefusedEntry)
	case len(e.GetData()) == 0 && term > termInForce && e.Type == nil:
		p.kind = KindEmpty
		return p, nil
	case len(e.GetData()) == 0 && term == termInForce && e.Type != nil:
		p.kind = KindNoop
		return p, nil
	case len(e.GetData()) == 0:
		return planned{}, fmt.Errorf("empty entry of term %d (term in force %d) with Type set %v, not as raft makes one: %w",
			term, termInForce, e.Type != nil, errRefusedEntry)
	case e.Type != nil:
		return planned{}, fmt.Errorf("normal entry with an explicit Type, not as raft makes one: %w", errRefusedEntry)
	case e.GetData()[0] >= 0x80:
		p.kind = KindCommand
	default:
		return classifyData(e, termInForce)
	}
	if term != termInForce {
		return planned{}, fmt.Errorf("%s entry of term %d starts no term (term in force %d): %w", p.kind, term, termInForce, errRefusedEntry)
	}
	if len(e.GetData()) > entryDataBytesMax {
		return planned{}, fmt.Errorf("%s entry of %d bytes, max %d: %w", p.kind, len(e.GetData()), entryDataBytesMax, errRefusedEntry)
	}
	return p, nil
}

// classifyData checks a data entry: one whole batch stamped by its leader
// with the entry's term as its epoch. The CRC and the records are left to
// storage.Append, which validates every batch it writes.
func classifyData(e *raftpb.Entry, termInForce uint64) (planned, error) {
	if e.GetTerm() != termInForce {
		return planned{}, fmt.Errorf("data entry of term %d starts no term (term in force %d): %w", e.GetTerm(), termInForce, errRefusedEntry)
	}
	h, err := batch.ParseHeader(e.GetData())
	if err != nil {
		return planned{}, fmt.Errorf("data entry: %w: %w", errRefusedEntry, err)
	}
	if h.TotalBytes() != len(e.GetData()) {
		return planned{}, fmt.Errorf("data entry of %d bytes holds a batch of %d: %w", len(e.GetData()), h.TotalBytes(), errRefusedEntry)
	}
	if int64(h.PartitionLeaderEpoch) != int64(e.GetTerm()) {
		// A leader stamps its term as the epoch; anything else is a bug
		// upstream, and the term could not be read back from the batch.
		return planned{}, fmt.Errorf("batch at offset %d has epoch %d, entry term %d: %w", h.BaseOffset, h.PartitionLeaderEpoch, e.GetTerm(), errRefusedEntry)
	}
	return planned{ent: e, data: true, header: h}, nil
}

func (k EntryKind) String() string {
	switch k {
	case KindEmpty:
		return "empty"
	case KindConfChange:
		return "ConfChange"
	case KindConfChangeV2:
		return "ConfChangeV2"
	case KindCommand:
		return "command"
	case KindNoop:
		return "no-op"
	}
	return fmt.Sprintf("EntryKind(%d)", uint8(k))
}
