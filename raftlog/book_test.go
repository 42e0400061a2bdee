package raftlog

import (
	"reflect"
	"strings"
	"testing"
)

// testBook applies records and fails the test on an error.
func testBook(t *testing.T, records ...Record) *book {
	t.Helper()
	b := &book{}
	for _, r := range records {
		if err := b.apply(r); err != nil {
			t.Fatalf("apply %s %+v: %v", r.Type(), r, err)
		}
	}
	return b
}

// history is a log with a snapshot at 10 (term 2) and, above it: empty
// entry 11 of term 3 at offset 500, data 12..14 (anchor at 12 → 500,
// 14 → 540), conf change 15 at 560, empty entry 16 of term 5 at 560, data
// 17.. (anchor 18 → 600).
func history() []Record {
	return []Record{
		&Snapshot{Index: 10, Term: 2, NextOffset: 500, LogStartOffset: 100,
			Terms: []TermStart{{Term: 1, Index: 1, Offset: 0}, {Term: 2, Index: 6, Offset: 300}}},
		&Entry{Index: 11, Term: 3, Kind: KindEmpty, NextOffset: 500},
		&Anchor{Index: 12, Offset: 500},
		&Entry{Index: 15, Term: 3, Kind: KindConfChange, NextOffset: 560, Data: []byte("cc")},
		&Anchor{Index: 14, Offset: 540}, // after a later entry: anchors land after their sync
		&Entry{Index: 16, Term: 5, Kind: KindEmpty, NextOffset: 560},
		&Anchor{Index: 18, Offset: 600},
	}
}

func TestBookTerm(t *testing.T) {
	b := testBook(t, history()...)
	cases := []struct {
		index uint64
		term  uint64
		ok    bool
	}{
		{9, 0, false}, // compacted
		{10, 2, true}, // the snapshot itself
		{11, 3, true}, // the empty entry starting term 3
		{14, 3, true},
		{15, 3, true},
		{16, 5, true},
		{1000, 5, true}, // past what raft-meta knows: the last term (the caller bounds by the last index)
	}
	for _, c := range cases {
		term, ok := b.term(c.index)
		if term != c.term || ok != c.ok {
			t.Errorf("term(%d) = %d, %v; want %d, %v", c.index, term, ok, c.term, c.ok)
		}
	}
}

func TestBookStart(t *testing.T) {
	b := testBook(t, history()...)
	cases := []struct {
		index uint64
		want  Position
		ok    bool
	}{
		{10, Position{}, false},                      // at the snapshot: nothing to scan for
		{11, Position{Index: 11, Offset: 500}, true}, // the empty entry
		{12, Position{Index: 12, Offset: 500}, true}, // an anchor
		{13, Position{Index: 12, Offset: 500}, true},
		{14, Position{Index: 14, Offset: 540}, true},
		{15, Position{Index: 15, Offset: 560}, true}, // a non-data entry
		{17, Position{Index: 16, Offset: 560}, true},
		{99, Position{Index: 18, Offset: 600}, true},
	}
	for _, c := range cases {
		got, ok := b.start(c.index)
		if got != c.want || ok != c.ok {
			t.Errorf("start(%d) = %+v, %v; want %+v, %v", c.index, got, ok, c.want, c.ok)
		}
	}
	empty := testBook(t, &Snapshot{Index: 1, Term: 1, NextOffset: 42})
	if got, ok := empty.start(5); !ok || got != (Position{Index: 2, Offset: 42}) {
		t.Errorf("start above a bare snapshot = %+v, %v; want the entry after it", got, ok)
	}
}

func TestBookLookups(t *testing.T) {
	b := testBook(t, history()...)
	for _, c := range []struct {
		index uint64
		want  Anchor
		ok    bool
	}{{11, Anchor{}, false}, {12, Anchor{12, 500}, true}, {13, Anchor{12, 500}, true}, {17, Anchor{14, 540}, true}, {18, Anchor{18, 600}, true}} {
		if got, ok := b.anchorAtOrBelow(c.index); got != c.want || ok != c.ok {
			t.Errorf("anchorAtOrBelow(%d) = %+v, %v; want %+v, %v", c.index, got, ok, c.want, c.ok)
		}
	}
	if e, ok := b.nonDataAt(15); !ok || e.Kind != KindConfChange || string(e.Data) != "cc" {
		t.Errorf("nonDataAt(15) = %+v, %v", e, ok)
	}
	if _, ok := b.nonDataAt(14); ok {
		t.Error("nonDataAt(14) found a data entry")
	}
	if got := b.lastIndex(); got != 18 {
		t.Errorf("lastIndex %d, want 18", got)
	}
}

// TestBookTruncate checks that a Truncate voids entries, anchors and term
// boundaries at or above its index, and that entries of a new term may
// then take the voided indexes.
func TestBookTruncate(t *testing.T) {
	b := testBook(t, append(history(),
		&Truncate{Index: 15, NextOffset: 560},
		&Entry{Index: 15, Term: 6, Kind: KindEmpty, NextOffset: 560},
	)...)
	wantNonData := []uint64{11, 15}
	var gotNonData []uint64
	for _, e := range b.nonData {
		gotNonData = append(gotNonData, e.Index)
	}
	if !reflect.DeepEqual(gotNonData, wantNonData) {
		t.Errorf("non-data entries %v, want %v", gotNonData, wantNonData)
	}
	if want := []Anchor{{12, 500}, {14, 540}}; !reflect.DeepEqual(b.anchors, want) {
		t.Errorf("anchors %v, want %v", b.anchors, want)
	}
	wantTerms := []TermStart{{1, 1, 0}, {2, 6, 300}, {3, 11, 500}, {6, 15, 560}}
	if !reflect.DeepEqual(b.terms, wantTerms) {
		t.Errorf("terms %v, want %v", b.terms, wantTerms)
	}
	if term, _ := b.term(16); term != 6 {
		t.Errorf("term(16) = %d after the truncation, want 6", term)
	}
}

// TestBookCompact checks that a later Snapshot record drops what lies at or
// below it and takes its term history, keeping what lies above.
func TestBookCompact(t *testing.T) {
	b := testBook(t, append(history(), &Snapshot{Index: 14, Term: 3, NextOffset: 560, LogStartOffset: 540,
		Terms: []TermStart{{Term: 2, Index: 6, Offset: 300}, {Term: 3, Index: 11, Offset: 500}}})...)
	if len(b.nonData) != 2 || b.nonData[0].Index != 15 {
		t.Errorf("non-data entries %+v, want 15 and 16", b.nonData)
	}
	if want := []Anchor{{18, 600}}; !reflect.DeepEqual(b.anchors, want) {
		t.Errorf("anchors %v, want %v", b.anchors, want)
	}
	wantTerms := []TermStart{{2, 6, 300}, {3, 11, 500}, {5, 16, 560}}
	if !reflect.DeepEqual(b.terms, wantTerms) {
		t.Errorf("terms %v, want %v", b.terms, wantTerms)
	}
	if _, ok := b.term(13); ok {
		t.Error("term(13) answered below the snapshot")
	}
}

// TestBookNoop checks that an empty entry in the middle of a term (raft's
// stand-in for a refused conf change) keeps the term and is no boundary.
func TestBookNoop(t *testing.T) {
	b := testBook(t, append(history(), &Entry{Index: 19, Term: 5, Kind: KindNoop, NextOffset: 700})...)
	if term, _ := b.term(19); term != 5 {
		t.Errorf("term(19) = %d, want 5", term)
	}
	if n := len(b.terms); b.terms[n-1].Index != 16 {
		t.Errorf("last term boundary %+v, want the one at 16", b.terms[n-1])
	}
	if e, ok := b.nonDataAt(19); !ok || e.Kind != KindNoop {
		t.Errorf("nonDataAt(19) = %+v, %v", e, ok)
	}
}

// TestBookRefuses lists records that contradict what came before: each is
// corruption of raft-meta.
func TestBookRefuses(t *testing.T) {
	cases := []struct {
		name   string
		record Record
		want   string
	}{
		{"snapshot moving back", &Snapshot{Index: 9, Term: 2}, "below the snapshot"},
		{"snapshot history above it", &Snapshot{Index: 20, Term: 5, Terms: []TermStart{{5, 21, 700}}}, "starting at"},
		{"snapshot history not ascending", &Snapshot{Index: 20, Term: 5, Terms: []TermStart{{5, 16, 560}, {3, 18, 600}}}, "boundaries"},
		{"snapshot history ending in another term", &Snapshot{Index: 20, Term: 5, Terms: []TermStart{{3, 11, 500}}}, "last term boundary"},
		{"entry at a known index", &Entry{Index: 18, Term: 5, Kind: KindCommand, NextOffset: 700}, "already known"},
		{"empty entry not starting a later term", &Entry{Index: 19, Term: 5, Kind: KindEmpty, NextOffset: 700}, "does not start a term"},
		{"entry in another term than its index's", &Entry{Index: 19, Term: 4, Kind: KindCommand, NextOffset: 700}, "in term 5"},
		{"no-op raising the term", &Entry{Index: 19, Term: 6, Kind: KindNoop, NextOffset: 700}, "in term 5"},
		{"entry at the offset of an anchored batch", &Entry{Index: 19, Term: 5, Kind: KindCommand, NextOffset: 600}, "not after the batch"},
		{"truncate into the snapshot", &Truncate{Index: 10, NextOffset: 500}, "at or below the snapshot"},
		{"anchor at or below the last anchor", &Anchor{Index: 18, Offset: 700}, "after anchor"},
		{"anchor offset not growing", &Anchor{Index: 19, Offset: 600}, "after anchor"},
		{"anchor below the snapshot", &Anchor{Index: 10, Offset: 400}, "at or below the snapshot"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := testBook(t, history()...)
			err := b.apply(c.record)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("apply %+v: error %v, want one containing %q", c.record, err, c.want)
			}
		})
	}
	t.Run("anchor on a non-data entry", func(t *testing.T) {
		b := testBook(t, history()[:4]...)
		if err := b.apply(&Anchor{Index: 15, Offset: 560}); err == nil || !strings.Contains(err.Error(), "non-data") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("anchor past a later non-data entry", func(t *testing.T) {
		b := testBook(t, history()[:4]...)
		if err := b.apply(&Anchor{Index: 14, Offset: 560}); err == nil || !strings.Contains(err.Error(), "not below entry 15") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("record before the snapshot", func(t *testing.T) {
		if err := (&book{}).apply(&Anchor{Index: 1}); err == nil || !strings.Contains(err.Error(), "before the first Snapshot") {
			t.Fatalf("error %v", err)
		}
	})
}
