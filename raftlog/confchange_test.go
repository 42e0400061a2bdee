package raftlog

import "testing"

func TestLastConfChange(t *testing.T) {
	b := &book{}
	for _, r := range []Record{
		&Snapshot{Index: 10, Term: 2, NextOffset: 100},
		&Entry{Index: 11, Term: 3, Kind: KindEmpty, NextOffset: 100},
		&Entry{Index: 13, Term: 3, Kind: KindConfChange, NextOffset: 101, Data: []byte("cc")},
		&Entry{Index: 14, Term: 3, Kind: KindNoop, NextOffset: 101},
		&Entry{Index: 16, Term: 3, Kind: KindConfChangeV2, NextOffset: 102, Data: []byte("cc2")},
	} {
		if err := b.apply(r); err != nil {
			t.Fatal(err)
		}
	}
	l := &Log{book: b, last: 17}
	for _, c := range []struct{ index, want uint64 }{{10, 0}, {12, 0}, {13, 13}, {15, 13}, {16, 16}, {17, 16}} {
		if got := l.LastConfChange(c.index); got != c.want {
			t.Errorf("LastConfChange(%d) = %d, want %d", c.index, got, c.want)
		}
	}
	if err := b.apply(&Snapshot{Index: 13, Term: 3, NextOffset: 101}); err != nil {
		t.Fatal(err)
	}
	if got := l.LastConfChange(15); got != 0 {
		t.Errorf("LastConfChange(15) after compaction at 13 = %d, want 0", got)
	}
}
