package controller

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/storage"
	"github.com/cairnlog/cairn/storage/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// A snapshot installed from the leader keeps its state at its index: the
// log's own snapshot answers with it (as raft asks when this node leads),
// the log reopens from it, and the bootstrap state below it is removed.
func TestInstalledSnapshotKeepsItsState(t *testing.T) {
	fs, e, cs, m := newTestMetaLog(t)
	boot, err := m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	d, err := raftlog.DecodeDescriptor(boot.GetData())
	if err != nil {
		t.Fatal(err)
	}
	d.StateData = []byte("leader state at 10")
	idx, term := uint64(10), uint64(1)
	in := &raftpb.Snapshot{Data: raftlog.EncodeDescriptor(d), Metadata: &raftpb.SnapshotMetadata{Index: &idx, Term: &term, ConfState: cs}}
	if err := m.ApplySnapshot(in); err != nil {
		t.Fatal(err)
	}
	checkSnapshotState(t, m, idx, d.StateData)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(stateFile("/meta", bootstrapIndex)); err == nil {
		t.Fatal("the bootstrap state is still kept below the installed snapshot")
	}
	m, err = openMetaLog(e, "/meta", 64<<20)
	if err != nil {
		t.Fatalf("reopen after the install: %v", err)
	}
	defer m.Close()
	checkSnapshotState(t, m, idx, d.StateData)
}

func checkSnapshotState(t *testing.T, m *metaLog, index uint64, want []byte) {
	t.Helper()
	snap, err := m.Snapshot()
	if err != nil {
		t.Fatalf("the log's snapshot: %v", err)
	}
	got, err := m.SnapshotState(snap)
	if err != nil {
		t.Fatal(err)
	}
	if snap.GetMetadata().GetIndex() != index || !bytes.Equal(got, want) {
		t.Fatalf("snapshot at %d with state %q, want %d with %q", snap.GetMetadata().GetIndex(), got, index, want)
	}
}

// An Append that overwrites a suffix (a new leader replacing entries this
// node wrote and never saw committed) records where it began; appends at
// the end do not.
func TestMetaLogRecordsOverwrittenSuffix(t *testing.T) {
	_, _, _, m := newTestMetaLog(t)
	defer m.Close()
	// A term starts with the leader's empty entry, as raft writes one; a
	// data entry is a one-record batch at the log's next offset.
	lastTerm := uint64(1)
	nextOffset := map[uint64]int64{bootstrapIndex: 0} // after each index
	entries := func(from, to, term uint64) []*raftpb.Entry {
		var out []*raftpb.Entry
		for i := from; i <= to; i++ {
			e := &raftpb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(term)}
			off := nextOffset[i-1]
			if term == lastTerm {
				data, err := encodeEntry([]byte("x"), off, term, 0)
				if err != nil {
					t.Fatal(err)
				}
				e.Data = data
				off++
			}
			nextOffset[i] = off
			lastTerm = term
			out = append(out, e)
		}
		return out
	}
	first := uint64(bootstrapIndex) + 1
	for _, step := range []struct {
		ents []*raftpb.Entry
		want uint64
	}{
		{entries(first, first+5, 2), 0},
		{entries(first+6, first+7, 2), 0},
		{entries(first+4, first+4, 3), first + 4},
		{entries(first+5, first+6, 3), first + 4},
		{entries(first+2, first+2, 4), first + 2},
	} {
		if err := m.Append(step.ents); err != nil {
			t.Fatal(err)
		}
		if got := m.overwrittenFrom(); got != step.want {
			t.Fatalf("after appending from %d: overwritten from %d, want %d", step.ents[0].GetIndex(), got, step.want)
		}
	}
}

// newTestMetaLog creates a meta log in /meta of a new memory filesystem,
// node 1's, from the bootstrap snapshot.
func newTestMetaLog(t *testing.T) (vfs.FS, env.Env, *raftpb.ConfState, *metaLog) {
	t.Helper()
	fs := vfs.NewMem()
	e := testEnv(fs, 1)
	cs := &raftpb.ConfState{Voters: []uint64{1 << 20}}
	if err := fs.MkdirAll("/meta"); err != nil {
		t.Fatal(err)
	}
	m, err := createMetaLog(e, "/meta", 64<<20, 1<<20|1, cs, encodeSnapshot(0, []byte{}))
	if err != nil {
		t.Fatal(err)
	}
	return fs, e, cs, m
}

// Meta log batches damaged in fields their CRC does not cover, in bytes
// synced before the recovery point: a node that finds the damage while it
// runs, by a compaction counting the entries, stops its metadata replica
// (replica.ErrLogLost) rather than lead on unable to take the snapshot a
// joining node needs. A batch moved by a flipped base offset below the
// compaction point fails the count's read; one whose leader epoch flipped
// above it disagrees with its entry's term.
func TestMetaLogDamageFoundWhileRunning(t *testing.T) {
	for name, damage := range map[string]func(t *testing.T, fs vfs.FS){
		"base offset": moveSecondMetaBatch,
		"leader epoch": func(t *testing.T, fs vfs.FS) {
			damageMetaSegment(t, fs, func(data []byte) int {
				last := 0
				for at := 0; at < len(data); {
					h, err := batch.ParseHeader(data[at:])
					if err != nil {
						t.Fatal(err)
					}
					last, at = at, at+h.TotalBytes()
				}
				data[last+13] ^= 0x10 // bit 20 of the big-endian epoch at byte 12
				return last
			})
		},
	} {
		t.Run(name, func(t *testing.T) {
			fs := vfs.NewMem()
			c, closeNode := openSingleIn(t, testEnv(fs, 1), nil, nil)
			defer closeNode()
			for range 5 {
				propose(t, c, allocate(1))
			}
			if err := c.snapshot(); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				propose(t, c, allocate(1))
			}
			damage(t, fs)
			if err := c.snapshot(); !storage.IsDamage(err) {
				t.Fatalf("snapshot = %v, want damage", err)
			}
			var stopped error
			if err := c.cfg.Scheduler.Do(GroupID, func(r *replica.Replica) { stopped = r.Err() }); err != nil {
				t.Fatal(err)
			}
			if !errors.Is(stopped, replica.ErrLogLost) {
				t.Fatalf("metadata replica: %v, want stopped with replica.ErrLogLost", stopped)
			}
		})
	}
}

// The same damage where no read of the open passes it (the segment's
// offset index starts the count for the entries it needs past it): the
// node refuses to start all the same, rather than find it at a later
// compaction.
func TestMetaLogBatchMovedRefusesTheStart(t *testing.T) {
	fs := vfs.NewMem()
	e := testEnv(fs, 1)
	c, closeNode := openSingleIn(t, e, nil, nil)
	for range 120 { // more than an index interval of batches
		propose(t, c, allocate(1))
	}
	if err := c.snapshot(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		propose(t, c, allocate(1))
	}
	closeNode()
	moveSecondMetaBatch(t, fs)

	var corruption *storage.CorruptionError
	if _, closeNode, err := tryOpenSingleIn(t, e, nil, nil); !errors.As(err, &corruption) {
		if err == nil {
			closeNode()
		}
		t.Fatalf("Open = %v, want *storage.CorruptionError", err)
	}
}

// moveSecondMetaBatch flips bit 14 of the base offset of the meta log's
// second batch.
func moveSecondMetaBatch(t *testing.T, fs vfs.FS) {
	t.Helper()
	damageMetaSegment(t, fs, func(data []byte) int {
		first, err := batch.ParseHeader(data)
		if err != nil {
			t.Fatal(err)
		}
		second := first.TotalBytes()
		data[second+6] ^= 0x40
		return second
	})
}

// damageMetaSegment changes the meta log's first segment in place, under
// an open log as a disk would: damage changes the bytes it is given and
// returns where the change begins.
func damageMetaSegment(t *testing.T, fs vfs.FS, damage func(data []byte) int) {
	t.Helper()
	f, err := fs.OpenAppend("/data/meta/log/00000000000000000000.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, _ := f.Size()
	data := make([]byte, size)
	if _, err := f.ReadAt(data, 0); err != nil {
		t.Fatal(err)
	}
	at := damage(data)
	if err := f.Truncate(int64(at)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data[at:]); err != nil {
		t.Fatal(err)
	}
}
