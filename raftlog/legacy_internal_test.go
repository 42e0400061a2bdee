package raftlog

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cairnlog/cairn/storage"
	"github.com/cairnlog/cairn/storage/vfs"
)

// legacyDir writes segments holding batches of offsets [0, 12), with
// the log start at 3, and, when epochs is not empty, leader-epochs.json.
func legacyDir(t *testing.T, epochs string) vfs.FS {
	t.Helper()
	fsys := vfs.NewMem()
	st, err := storage.Open(fsys, "p", testCfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if err := st.Append(stampedBatch(t, st.NextOffset(), spec{term: 0, records: 3, valueBytes: 10}), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AdvanceStartOffset(3); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if epochs != "" {
		if err := vfs.WriteFileAtomic(fsys, "p/"+legacyEpochsFileName, []byte(epochs)); err != nil {
			t.Fatal(err)
		}
	}
	return fsys
}

// TestCreateLegacy: Create over legacy directories puts the snapshot at
// the legacy end with the epochs clipped to it and the term at least the
// newest one; a damaged epochs file is refused; a Create interrupted
// before raft-state is redone, while a raft-state missing beside a used
// log is corruption.
func TestCreateLegacy(t *testing.T) {
	cases := []struct {
		name, epochs string
		term         uint64
		legacy       string
	}{
		{"no epochs file", "", testBoot.Term, "[]"},
		{"epochs", `{"version":1,"entries":[{"epoch":0,"start_offset":0},{"epoch":4,"start_offset":6}]}`, 4, "[{0 0} {4 6}]"},
		{"epochs below the bootstrap term", `{"version":1,"entries":[{"epoch":1,"start_offset":0}]}`, testBoot.Term, "[{1 0}]"},
		{"epochs past the end", `{"version":1,"entries":[{"epoch":3,"start_offset":0},{"epoch":7,"start_offset":20}]}`, 3, "[{3 0}]"},
		{"only an epoch past the end", `{"version":1,"entries":[{"epoch":7,"start_offset":20}]}`, 7, "[{7 12}]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fsys := legacyDir(t, c.epochs)
			l := createLog(t, fsys)
			defer l.Close()
			s := l.book.snapshot
			if s.Index != testBoot.Index || s.Term != c.term || s.NextOffset != 12 || s.LogStartOffset != 3 || fmt.Sprint(s.Legacy) != c.legacy {
				t.Fatalf("snapshot %+v, want term %d, [3, 12), legacy %s", s, c.term, c.legacy)
			}
			if hs, _, _ := l.InitialState(); hs.GetTerm() != c.term {
				t.Fatalf("hard state term %d, want %d", hs.GetTerm(), c.term)
			}
		})
	}
	for _, bad := range []string{`{"version":2,"entries":[]}`, `{"version":1,"entries":[{"epoch":3,"start_offset":0},{"epoch":2,"start_offset":1}]}`, `not json`} {
		if _, err := Create(legacyDir(t, bad), "p", testCfg, testBoot, 0); err == nil {
			t.Errorf("Create with leader epochs %s succeeded", bad)
		}
	}

	fsys := legacyDir(t, "")
	l := createLog(t, fsys)
	l.Close()
	if err := fsys.Remove("p/" + stateFileName); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(fsys, "p", testCfg, 0); !errors.Is(err, ErrStateMissing) {
		t.Fatalf("Open after an interrupted Create: %v, want ErrStateMissing", err)
	}
	l = createLog(t, fsys)
	ents, _, _ := newModel(t).build(t, 11, []spec{{kind: 'e', term: 3}})
	if err := l.Append(ents, 0); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := fsys.Remove("p/" + stateFileName); err != nil {
		t.Fatal(err)
	}
	var corrupt *storage.CorruptionError
	if _, err := Open(fsys, "p", testCfg, 0); !errors.As(err, &corrupt) {
		t.Fatalf("Open of a used log without raft-state: %v, want a storage.CorruptionError", err)
	}
}
