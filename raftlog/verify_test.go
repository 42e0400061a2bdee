package raftlog

import (
	"errors"
	"testing"

	"github.com/cairnlog/cairn/internal/testio"
	"github.com/cairnlog/cairn/storage"
	"github.com/cairnlog/cairn/storage/vfs"
)

// TestVerifyReadsWhatOpenTrusts: damage in a segment before the last
// anchor, which Open's count does not reach, passes Open and is refused by
// Verify: a record byte (the CRC shows it), a base offset (its place) and
// a leader epoch (the entry's term). An intact log verifies.
func TestVerifyReadsWhatOpenTrusts(t *testing.T) {
	for name, damage := range map[string]func([]byte) error{
		"intact":       nil,
		"record":       testio.FlipSecondBatchBody,
		"base offset":  testio.FlipSecondBatchBaseOffset,
		"leader epoch": testio.FlipSecondBatchLeaderEpoch,
	} {
		t.Run(name, func(t *testing.T) {
			fsys := vfs.NewMem()
			l := createLog(t, fsys)
			m := newModel(t)
			specs := []spec{{kind: 'e', term: 3}}
			for round := range 10 { // a segment rolls before an append only
				for range 4 {
					specs = append(specs, spec{kind: 'd', term: 3, records: 2, valueBytes: 100})
				}
				ents, begins, end := m.build(t, m.last()+1, specs)
				if err := l.Append(ents, int64(round)); err != nil {
					t.Fatal(err)
				}
				m.apply(t, ents, begins, end)
				specs = nil
			}
			if err := l.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			if n := len(l.Segments().Segments()); n < 3 {
				t.Fatalf("%d segments, want several", n)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if damage != nil {
				name := "p/00000000000000000000.log"
				data, err := vfs.ReadFile(fsys, name)
				if err != nil {
					t.Fatal(err)
				}
				if err := damage(data); err != nil {
					t.Fatal(err)
				}
				if err := vfs.WriteFileAtomic(fsys, name, data); err != nil {
					t.Fatal(err)
				}
			}
			l = openLog(t, fsys)
			defer l.Close()
			err := l.Verify()
			var corruption *storage.CorruptionError
			switch {
			case damage == nil && err != nil:
				t.Fatalf("Verify = %v on an intact log", err)
			case damage != nil && !errors.As(err, &corruption):
				t.Fatalf("Verify = %v, want *storage.CorruptionError", err)
			}
		})
	}
}
