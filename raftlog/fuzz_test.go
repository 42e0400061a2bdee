package raftlog

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/cairnlog/cairn/storage"
	"github.com/cairnlog/cairn/storage/vfs"
)

// FuzzRaftState checks that decoding arbitrary bytes never panics, that
// whatever decodes encodes back to the same bytes (the encoding is
// canonical), and that a state built from the input round-trips.
func FuzzRaftState(f *testing.F) {
	sample, err := encodeState(sampleState())
	if err != nil {
		f.Fatal(err)
	}
	empty, _ := encodeState(State{})
	f.Add(sample)
	f.Add(empty)
	f.Add(sample[:len(sample)-1])
	f.Add([]byte("CRNH"))
	f.Fuzz(func(t *testing.T, input []byte) {
		if s, err := decodeState(input); err == nil {
			again, err := encodeState(s)
			if err != nil || !bytes.Equal(again, input) {
				t.Fatalf("decoded %+v re-encodes to %x (%v), input %x", s, again, err, input)
			}
		} else if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrVersion) {
			t.Fatalf("error %v is neither ErrInvalid nor ErrVersion", err)
		}
		s := stateFromBytes(input)
		b, err := encodeState(s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeState(b)
		if err != nil || !reflect.DeepEqual(got, s) {
			t.Fatalf("state %+v decodes to %+v, %v", s, got, err)
		}
	})
}

// stateFromBytes fills a State's fields from b (zero past its end), the
// ConfState taking what is left.
func stateFromBytes(b []byte) State {
	r := &bodyReader{b: append(append([]byte(nil), b...), make([]byte, 64)...)}
	s := State{
		Clean: r.u8("")&1 == 1, GroupID: r.u64(""), ReplicaID: r.u64(""), Term: r.u64(""), Vote: r.u64(""),
		Applied: r.u64(""), MetaRecoveryPoint: int64(r.u64("") >> 1), MetaGeneration: r.u32(""),
	}
	if len(b) > 57 {
		s.ConfState = append([]byte(nil), b[57:]...)
	}
	return s
}

// FuzzRaftMeta checks that scanning arbitrary bytes as raft-meta never
// panics, and that what a scan accepts is exactly what re-encoding its
// header and records gives: valid encodings round-trip, and a torn tail
// or corruption is never half-accepted; and that applying what it
// accepts to the bookkeeping never panics.
func FuzzRaftMeta(f *testing.F) {
	whole := encodeMetaFile(f, sampleHeader, sampleRecords())
	f.Add(whole, sampleHeader.Generation, int64(0))
	f.Add(whole, sampleHeader.Generation, int64(len(whole)))
	f.Add(whole[:len(whole)-3], sampleHeader.Generation, int64(metaHeaderBytes))
	f.Add(whole[:metaHeaderBytes], sampleHeader.Generation-1, int64(0))
	f.Add(append(append([]byte(nil), whole...), 0, 0, 0, 0, 0, 0, 0, 9), sampleHeader.Generation, int64(0))
	f.Fuzz(func(t *testing.T, input []byte, generation uint32, synced int64) {
		scan, err := ScanMeta("raft-meta", input, generation, synced)
		if err != nil {
			var corrupt *storage.CorruptionError
			if !errors.As(err, &corrupt) && !errors.Is(err, ErrVersion) {
				t.Fatalf("error %v is neither corruption nor ErrVersion", err)
			}
			return
		}
		if scan.ValidBytes < scan.RecoveryPoint || scan.ValidBytes > int64(len(input)) {
			t.Fatalf("valid bytes %d outside [recovery point %d, %d]", scan.ValidBytes, scan.RecoveryPoint, len(input))
		}
		if (scan.Torn == nil) != (scan.ValidBytes == int64(len(input))) {
			t.Fatalf("torn %v with %d valid bytes of %d", scan.Torn, scan.ValidBytes, len(input))
		}
		again := encodeMetaHeader(scan.Header)
		for _, r := range scan.Records {
			if again, err = appendRecord(again, r); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(again, input[:scan.ValidBytes]) {
			t.Fatalf("re-encoded %x, accepted %x", again, input[:scan.ValidBytes])
		}
		// The bookkeeping takes whatever a scan accepts without panicking;
		// contradictions are errors.
		var b book
		for _, r := range scan.Records {
			if b.apply(r) != nil {
				break
			}
		}
	})
}

// FuzzOpen replaces raft-meta beside a log's segments with arbitrary
// bytes (and raft-state's recovery point with an arbitrary one) and
// checks that Open never panics, and that when it succeeds the log is
// readable whole, reaches the applied index, and opens again to the same
// end: recovery, including its cuts, is idempotent.
func FuzzOpen(f *testing.F) {
	base := vfs.NewMem()
	l := createLog(f, base)
	m := newModel(f)
	ents, _, _ := m.build(f, 11, []spec{{kind: 'e', term: 3}, {kind: 'd', term: 3, records: 2, valueBytes: 30},
		{kind: 'c', term: 3}, {kind: 'd', term: 3, records: 1, valueBytes: 5}, {kind: 'e', term: 4}, {kind: 'n', term: 4},
		{kind: 'd', term: 4, records: 3, valueBytes: 9}})
	if err := l.Append(ents, 0); err != nil {
		f.Fatal(err)
	}
	if err := l.Checkpoint(); err != nil {
		f.Fatal(err)
	}
	l.Close()
	meta, err := vfs.ReadFile(base, "p/raft-meta")
	if err != nil {
		f.Fatal(err)
	}
	state, err := ReadState(base, "p/raft-state")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(meta, state.MetaRecoveryPoint)
	f.Add(meta[:len(meta)-5], int64(metaHeaderBytes))
	f.Add(meta[:metaHeaderBytes+30], int64(0))
	f.Add(installedMeta(f, state), int64(0))
	f.Fuzz(func(t *testing.T, input []byte, synced int64) {
		fsys := vfs.NewMem()
		if err := copyDir(base, fsys, "p"); err != nil {
			t.Fatal(err)
		}
		s := state
		s.MetaRecoveryPoint = max(synced, 0)
		if err := WriteState(fsys, "p/raft-state", s); err != nil {
			t.Fatal(err)
		}
		if err := vfs.WriteFileAtomic(fsys, "p/raft-meta", input); err != nil {
			t.Fatal(err)
		}
		l, err := Open(fsys, "p", testCfg, 0)
		if err != nil {
			return
		}
		first, _ := l.FirstIndex()
		last, _ := l.LastIndex()
		if last < s.Applied {
			t.Fatalf("opened up to %d below the applied index %d", last, s.Applied)
		}
		if last >= first {
			if _, err := l.Entries(first, last+1, math.MaxUint64); err != nil {
				t.Fatalf("Entries [%d, %d]: %v", first, last, err)
			}
		}
		l.Close()
		again, err := Open(fsys, "p", testCfg, 0)
		if err != nil {
			t.Fatalf("second open: %v", err)
		}
		defer again.Close()
		if got, _ := again.LastIndex(); got != last {
			t.Fatalf("second open up to %d, first up to %d", got, last)
		}
	})
}

// copyDir copies the files of dir from one filesystem to another.
func copyDir(from, to vfs.FS, dir string) error {
	names, err := from.List(dir)
	if err != nil {
		return err
	}
	if err := to.MkdirAll(dir); err != nil {
		return err
	}
	for _, name := range names {
		b, err := vfs.ReadFile(from, dir+"/"+name)
		if err != nil {
			return err
		}
		if err := vfs.WriteFileAtomic(to, dir+"/"+name, b); err != nil {
			return err
		}
	}
	return nil
}

// installedMeta is the raft-meta an install past the segments' end
// writes, one generation ahead of state: Open must reset the segments.
func installedMeta(f *testing.F, state State) []byte {
	f.Helper()
	rec, err := appendRecord(nil, &Snapshot{Index: 30, Term: 6, NextOffset: 700, LogStartOffset: 700, ConfState: state.ConfState,
		Terms: []TermStart{{Term: 6, Index: 25, Offset: 650}}, Legacy: []LegacyEpoch{{Epoch: 1, StartOffset: 0}}})
	if err != nil {
		f.Fatal(err)
	}
	h := MetaHeader{GroupID: state.GroupID, ReplicaID: state.ReplicaID, Generation: state.MetaGeneration + 1,
		WrittenBytes: int64(metaHeaderBytes + len(rec)), ResetSegments: true}
	return append(encodeMetaHeader(h), rec...)
}
