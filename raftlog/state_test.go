package raftlog

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/cairnlog/cairn/storage/vfs"
)

func sampleState() State {
	return State{
		Clean: true, GroupID: 7, ReplicaID: 3<<20 | 1, Term: 12, Vote: 2, Applied: 4096,
		MetaRecoveryPoint: 1234, MetaGeneration: 5, ConfState: []byte{0x0a, 0x03, 1, 2, 3},
	}
}

func TestStateRoundTrip(t *testing.T) {
	for _, s := range []State{
		{},
		sampleState(),
		{Term: ^uint64(0), Vote: ^uint64(0), Applied: ^uint64(0), MetaRecoveryPoint: 1<<63 - 1, MetaGeneration: ^uint32(0), ConfState: make([]byte, confStateBytesMax)},
	} {
		fsys := vfs.NewMem()
		if err := WriteState(fsys, "raft-state", s); err != nil {
			t.Fatal(err)
		}
		got, err := ReadState(fsys, "raft-state")
		if err != nil {
			t.Fatal(err)
		}
		if len(s.ConfState) == 0 {
			s.ConfState = nil
		}
		if !reflect.DeepEqual(got, s) {
			t.Errorf("read %+v, wrote %+v", got, s)
		}
	}
}

func TestStateEncodeRefusesOutOfBounds(t *testing.T) {
	for name, s := range map[string]State{
		"ConfState too long":      {ConfState: make([]byte, confStateBytesMax+1)},
		"negative recovery point": {MetaRecoveryPoint: -1},
	} {
		if _, err := encodeState(s); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
}

// TestStateErrors checks that the three ways a read can fail are told
// apart: missing, wrong version, and anything else invalid.
func TestStateErrors(t *testing.T) {
	good, err := encodeState(sampleState())
	if err != nil {
		t.Fatal(err)
	}
	modified := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := []struct {
		name string
		data []byte // nil: no file
		want error
	}{
		{"missing", nil, ErrStateMissing},
		{"empty", []byte{}, ErrInvalid},
		{"torn", good[:len(good)-1], ErrInvalid},
		{"trailing byte", append(append([]byte(nil), good...), 0), ErrInvalid},
		{"bad magic", modified(func(b []byte) []byte { b[0] ^= 1; return b }), ErrInvalid},
		{"version 2", modified(func(b []byte) []byte { b[5] = 2; return b }), ErrVersion},
		{"bit flip in term", modified(func(b []byte) []byte { b[30] ^= 0x10; return b }), ErrInvalid},
		{"bit flip in crc", modified(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrInvalid},
		{"huge ConfState length", modified(func(b []byte) []byte { b[60] = 0xff; return b }), ErrInvalid},
		{"unknown flag", resealed(modified(func(b []byte) []byte { b[6] = 0x80; return b })), ErrInvalid},
		{"negative recovery point", resealed(modified(func(b []byte) []byte { b[48] = 0x80; return b })), ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fsys := vfs.NewMem()
			if c.data != nil {
				if err := vfs.WriteFileAtomic(fsys, "raft-state", c.data); err != nil {
					t.Fatal(err)
				}
			}
			_, err := ReadState(fsys, "raft-state")
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			for _, other := range []error{ErrStateMissing, ErrInvalid, ErrVersion} {
				if other != c.want && errors.Is(err, other) {
					t.Errorf("error %v is also %v", err, other)
				}
			}
		})
	}
}

// resealed recomputes the CRC of a raft-state encoding, so a test can
// reach the checks made after it.
func resealed(b []byte) []byte {
	body := b[:len(b)-stateCRCBytes]
	be.PutUint32(b[len(body):], crcOf(body))
	return b
}

// TestStateCrashAtEveryStep cuts the power before each filesystem call of
// a raft-state replacement (with and without torn unsynced writes): the
// file read back is the old state or the new one, never garbage, and both
// outcomes occur.
func TestStateCrashAtEveryStep(t *testing.T) {
	old, updated := sampleState(), sampleState()
	updated.Term, updated.Vote, updated.ConfState = 13, 0, []byte{9, 9}
	for _, tear := range []bool{false, true} {
		sawOld, sawNew := false, false
		for budget := 1; ; budget++ {
			base := vfs.NewCrashFS()
			if err := WriteState(base, "raft-state", old); err != nil {
				t.Fatal(err)
			}
			cfs := vfs.NewPowerCutFS(base, budget, vfs.CrashOptions{Rand: rand.New(rand.NewPCG(uint64(budget), 1)), TearUnsynced: tear})
			writeErr := WriteState(cfs, "raft-state", updated)
			crashed := cfs.Cut()
			after := cfs.Crash()
			got, err := ReadState(after, "raft-state")
			if err != nil {
				t.Fatalf("tear %v, crash before call %d: %v", tear, budget, err)
			}
			switch {
			case reflect.DeepEqual(got, old):
				sawOld = true
			case reflect.DeepEqual(got, updated):
				sawNew = true
			default:
				t.Fatalf("tear %v, crash before call %d: read %+v", tear, budget, got)
			}
			if !crashed {
				if writeErr != nil || !reflect.DeepEqual(got, updated) {
					t.Fatalf("write completed with %v, read %+v", writeErr, got)
				}
				break
			}
			if budget > 20 {
				t.Fatal("the write never completed")
			}
		}
		if !sawOld || !sawNew {
			t.Errorf("tear %v: saw old %v, new %v; want both", tear, sawOld, sawNew)
		}
	}
}

// TestStateWriteFaults fails each filesystem call of a raft-state
// replacement: the write reports the error and the old state stays
// readable.
func TestStateWriteFaults(t *testing.T) {
	old, updated := sampleState(), sampleState()
	updated.Term = 99
	injected := errors.New("injected")
	for _, op := range []vfs.Op{vfs.OpCreate, vfs.OpWrite, vfs.OpSync, vfs.OpClose, vfs.OpRename} {
		t.Run(op.String(), func(t *testing.T) {
			fsys := vfs.NewErrorFS(vfs.NewMem())
			if err := WriteState(fsys, "raft-state", old); err != nil {
				t.Fatal(err)
			}
			fsys.Inject(vfs.Rule{Op: op, Err: injected})
			if err := WriteState(fsys, "raft-state", updated); !errors.Is(err, injected) {
				t.Fatalf("write error %v, want the injected one", err)
			}
			got, err := ReadState(fsys, "raft-state")
			if err != nil || !reflect.DeepEqual(got, old) {
				t.Fatalf("read %+v, %v; want the old state", got, err)
			}
		})
	}
}
