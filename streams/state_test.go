package streams

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cairnlog/cairn/batch"
)

func event(stream, id string, expected string) batch.Record {
	r := batch.Record{Key: []byte(stream), Value: []byte("{}"), TimestampMs: 1000}
	if expected != "" {
		r.Headers = append(r.Headers, batch.RecordHeader{Key: HeaderExpectedRevision, Value: []byte(expected)})
	}
	if id != "" {
		r.Headers = append(r.Headers, batch.RecordHeader{Key: HeaderID, Value: []byte(id)})
	}
	return r
}

func op(stream, name string, value []byte, extra ...batch.RecordHeader) batch.Record {
	return batch.Record{Key: []byte(stream), Value: value, Headers: append([]batch.RecordHeader{{Key: HeaderStreamOp, Value: []byte(name)}}, extra...)}
}

func openTemp(t *testing.T) *Index {
	t.Helper()
	x, err := Open(filepath.Join(t.TempDir(), "idx"), 0, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = x.Close() })
	return x
}

// appendRecs checks and commits recs at offsets from next, as the partition does.
func appendRecs(t *testing.T, x *Index, recs ...batch.Record) (*Change, error) {
	t.Helper()
	c := x.NewChange()
	for i, r := range recs {
		if err := c.Check(r, x.Next()+int64(i)); err != nil {
			return nil, err
		}
	}
	if err := c.Result(); err != nil {
		return nil, err
	}
	if err := x.Commit(c); err != nil {
		t.Fatal(err)
	}
	return c, nil
}

func TestExpectedRevisions(t *testing.T) {
	x := openTemp(t)
	if _, err := appendRecs(t, x, event("s", "a", "exists")); !errors.Is(err, ErrWrongExpectedRevision) {
		t.Fatalf("exists on a new stream: %v", err)
	}
	if _, err := appendRecs(t, x, event("s", "a", "no-stream"), event("s", "b", "")); err != nil {
		t.Fatal(err)
	}
	var wrong *WrongExpectedRevisionError
	if _, err := appendRecs(t, x, event("s", "c", "0")); !errors.As(err, &wrong) || wrong.Actual != 1 || wrong.Stream != "s" {
		t.Fatalf("exact 0 at revision 1: %v", err)
	}
	if _, err := appendRecs(t, x, event("s", "c", "no-stream")); !errors.As(err, &wrong) {
		t.Fatalf("no-stream on an existing stream: %v", err)
	}
	c, err := appendRecs(t, x, event("s", "c", "1"), event("t", "d", "any"))
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(c.Appended())
	if want := "[{s 2 2 2 2} {t 0 0 3 3}]"; got != want {
		t.Fatalf("appended %s, want %s", got, want)
	}
	if st, _ := x.State("s"); st.LastRevision != 2 || st.LastOffset != 2 || !st.Exists() {
		t.Fatalf("state %+v", st)
	}
	// A record with a header but no key is refused; a malformed value too.
	if _, err := appendRecs(t, x, batch.Record{Value: []byte("x"), Headers: []batch.RecordHeader{{Key: HeaderExpectedRevision, Value: []byte("any")}}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("keyless: %v", err)
	}
	if _, err := appendRecs(t, x, event("s", "e", "-3")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad expected: %v", err)
	}
}

func TestDuplicates(t *testing.T) {
	x := openTemp(t)
	if _, err := appendRecs(t, x, event("s", "a", "no-stream"), event("s", "b", ""), event("s", "c", "")); err != nil {
		t.Fatal(err)
	}
	// The retry of the whole append, and of a later part of it.
	for _, tc := range []struct {
		recs        []batch.Record
		first, last int64
	}{
		{[]batch.Record{event("s", "a", "no-stream"), event("s", "b", ""), event("s", "c", "")}, 0, 2},
		{[]batch.Record{event("s", "b", "0"), event("s", "c", "")}, 1, 2},
	} {
		_, err := appendRecs(t, x, tc.recs...)
		var dup *DuplicateError
		if !errors.As(err, &dup) || dup.First != tc.first || dup.Last != tc.last || dup.FirstOffset != tc.first || dup.LastOffset != tc.last {
			t.Fatalf("retry: %v", err)
		}
	}
	// Partly new, out of order, or repeated within one append: refused.
	for name, recs := range map[string][]batch.Record{
		"new then old": {event("s", "n", "any"), event("s", "a", "")},
		"old then new": {event("s", "a", "any"), event("s", "n", "")},
		"wrong order":  {event("s", "b", "any"), event("s", "a", "")},
		"repeated id":  {event("s", "n", "any"), event("s", "n", "")},
	} {
		if _, err := appendRecs(t, x, recs...); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Without an expected revision (a plain Kafka producer) an id is just an id.
	if _, err := appendRecs(t, x, event("s", "a", "")); err != nil {
		t.Fatal(err)
	}
}

func TestDeletesAndMetadata(t *testing.T) {
	x := openTemp(t)
	if _, err := appendRecs(t, x, event("s", "a", ""), event("s", "b", "")); err != nil {
		t.Fatal(err)
	}
	md := Metadata{MaxCount: 5, MaxAgeMs: -1, TruncateBefore: 1}
	if _, err := appendRecs(t, x, op("s", OpMetadata, EncodeMetadata(md))); err != nil {
		t.Fatal(err)
	}
	st, _ := x.State("s")
	if st.Metadata != md || st.FirstKept() != 1 {
		t.Fatalf("after metadata %+v first kept %d", st, st.FirstKept())
	}
	if _, err := appendRecs(t, x, op("s", OpDelete, nil)); err != nil {
		t.Fatal(err)
	}
	st, _ = x.State("s")
	if !st.SoftDeleted || st.Exists() || st.FirstKept() != 2 {
		t.Fatalf("soft deleted %+v", st)
	}
	// Written again, it continues its revisions; no-stream holds after a soft delete.
	c, err := appendRecs(t, x, event("s", "c", "no-stream"))
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Appended()[0]; a.First != 2 {
		t.Fatalf("after soft delete the next revision is %d, want 2", a.First)
	}
	if _, err := appendRecs(t, x, op("s", OpHardDelete, nil, batch.RecordHeader{Key: HeaderExpectedRevision, Value: []byte("1")})); !errors.Is(err, ErrWrongExpectedRevision) {
		t.Fatalf("hard delete with a wrong expectation: %v", err)
	}
	if _, err := appendRecs(t, x, op("s", OpHardDelete, nil)); err != nil {
		t.Fatal(err)
	}
	for _, r := range []batch.Record{event("s", "d", ""), event("s", "d", "any"), op("s", OpMetadata, EncodeMetadata(NoMetadata))} {
		if _, err := appendRecs(t, x, r); !errors.Is(err, ErrStreamDeleted) {
			t.Fatalf("write after hard delete: %v", err)
		}
	}
	if _, err := appendRecs(t, x, op("s", OpCleaned, nil, batch.RecordHeader{Key: HeaderRevision, Value: []byte("1")})); !errors.Is(err, ErrInvalid) {
		t.Fatalf("producer-written cleaned marker: %v", err)
	}
	if _, err := appendRecs(t, x, op("u", OpMetadata, []byte("{not json"))); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad metadata: %v", err)
	}
}

// TestReplay: applying the log rebuilds what checking and committing built,
// and a cleaned marker restores the numbering of the events after it.
func TestReplay(t *testing.T) {
	log := []batch.Record{
		event("a", "1", "no-stream"), event("b", "2", ""), event("a", "3", "0"),
		op("b", OpMetadata, EncodeMetadata(Metadata{MaxCount: 1, MaxAgeMs: -1, TruncateBefore: -1})),
		event("b", "4", ""), {Value: []byte("keyless")}, event("a", "5", ""), op("a", OpDelete, nil), event("a", "6", ""),
	}
	live := openTemp(t)
	for _, r := range log {
		if _, err := appendRecs(t, live, r); err != nil {
			t.Fatal(err)
		}
	}
	rebuilt := openTemp(t)
	c := rebuilt.NewChange()
	for i, r := range log {
		if err := c.Apply(r, int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := rebuilt.Commit(c); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"a", "b"} {
		want, _ := live.State(s)
		got, _ := rebuilt.State(s)
		if got != want {
			t.Errorf("stream %s: rebuilt %+v, live %+v", s, got, want)
		}
		we, _ := live.Entries(s, 0, false, 100)
		ge, _ := rebuilt.Entries(s, 0, false, 100)
		if fmt.Sprint(we) != fmt.Sprint(ge) {
			t.Errorf("stream %s entries: rebuilt %v, live %v", s, ge, we)
		}
	}
	if next := rebuilt.Next(); next != int64(len(log)) {
		t.Errorf("rebuilt covers up to %d, want %d", next, len(log))
	}
	// After the cleaner removed a's first events, a marker carries the numbering.
	cleaned := []batch.Record{op("a", OpCleaned, nil, batch.RecordHeader{Key: HeaderRevision, Value: []byte("2")}), event("a", "6", "")}
	x := openTemp(t)
	c = x.NewChange()
	for i, r := range cleaned {
		if err := c.Apply(r, int64(10+i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.Commit(c); err != nil {
		t.Fatal(err)
	}
	if e, ok, _ := x.Entry("a", 3); !ok || e.Offset != 11 {
		t.Fatalf("event after the marker: %+v %v", e, ok)
	}
}

func TestEntriesAndReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "idx")
	x, err := Open(dir, 0, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var recs []batch.Record
	for i := range 50 {
		recs = append(recs, event("s", strconv.Itoa(i), ""), event("other", "o"+strconv.Itoa(i), ""))
	}
	if _, err := appendRecs(t, x, recs...); err != nil {
		t.Fatal(err)
	}
	fwd, _ := x.Entries("s", 10, false, 5)
	back, _ := x.Entries("s", 10, true, 3)
	if len(fwd) != 5 || fwd[0].Revision != 10 || fwd[0].Offset != 20 || fwd[4].Revision != 14 {
		t.Fatalf("forwards %v", fwd)
	}
	if len(back) != 3 || back[0].Revision != 10 || back[2].Revision != 8 {
		t.Fatalf("backwards %v", back)
	}
	if rev, ok, _ := x.RevisionAt(21); !ok || rev != 10 {
		t.Fatalf("revision at 21: %d %v", rev, ok)
	}
	deleteBelow(t, x, "s", 40, 1<<20)
	if e, _ := x.Entries("s", 0, false, 100); len(e) != 10 || e[0].Revision != 40 {
		t.Fatalf("after DeleteBelow %v", e)
	}
	if _, ok, _ := x.RevisionOfID("s", "3"); ok {
		t.Fatal("id of a deleted entry is still known")
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened over the same log it keeps everything; over a shorter log it starts over.
	if x, err = Open(dir, 100, Options{}); err != nil || x.Next() != 100 {
		t.Fatalf("reopen: next %d, %v", x.Next(), err)
	}
	if st, _ := x.State("s"); st.LastRevision != 49 {
		t.Fatalf("reopened state %+v", st)
	}
	_ = x.Close()
	if x, err = Open(dir, 60, Options{}); err != nil || x.Next() != 0 {
		t.Fatalf("reopen over a shorter log: next %d, %v", x.Next(), err)
	}
	if st, _ := x.State("s"); st.LastRevision != -1 {
		t.Fatalf("index ahead of the log was kept: %+v", st)
	}
	_ = x.Close()
}

func TestExpectedStrings(t *testing.T) {
	for _, s := range []string{"any", "no-stream", "exists", "0", "42"} {
		e, err := ParseExpected(s)
		if err != nil || e.String() != s {
			t.Errorf("%q: %v %v", s, e, err)
		}
	}
	for _, s := range []string{"", "-1", "x", "1.5"} {
		if _, err := ParseExpected(s); err == nil {
			t.Errorf("%q parsed", s)
		}
	}
}

// TestReplayKeepsExactExpectedRevisions: a record written with an exact
// expected revision N was checked against a stream at revision N, so a
// replay that lacks the stream's earlier events (retention or compaction
// removed them while the topic had another policy, and the index was lost)
// still numbers it N+1, and the stream continues from there.
func TestReplayKeepsExactExpectedRevisions(t *testing.T) {
	x := openTemp(t)
	c := x.NewChange()
	for i, r := range []batch.Record{event("s", "e5", "4"), event("s", "e6", ""), op("s", OpMetadata, EncodeMetadata(NoMetadata)),
		event("s", "e7", "1")} { // never lowers: a stale expectation in the log changes nothing
		if err := c.Apply(r, int64(100+i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.Commit(c); err != nil {
		t.Fatal(err)
	}
	st, err := x.State("s")
	if err != nil {
		t.Fatal(err)
	}
	if st.LastRevision != 7 {
		t.Fatalf("replayed stream at revision %d, want 7 (e5 at 5, e6 at 6, e7 at 7)", st.LastRevision)
	}
	if e, ok, err := x.Entry("s", 5); err != nil || !ok || e.Offset != 100 {
		t.Fatalf("revision 5: %+v %v %v, want offset 100", e, ok, err)
	}
}

// TestChangeMoved: a change reports the streams whose state moves beyond
// their last revision — operations, creation, revival after a deletion, an
// event that advances max_count's first kept revision — and not plain
// appends to an existing stream, which readers bound by the high watermark.
func TestChangeMoved(t *testing.T) {
	x := openTemp(t)
	if _, err := appendRecs(t, x, event("plain", "p0", ""), event("bounded", "b0", ""),
		op("bounded", OpMetadata, EncodeMetadata(Metadata{MaxCount: 2, MaxAgeMs: -1, TruncateBefore: -1})),
		event("gone", "g0", ""), op("gone", OpDelete, nil)); err != nil {
		t.Fatal(err)
	}
	c, err := appendRecs(t, x, event("plain", "p1", ""), event("bounded", "b1", ""), event("gone", "g1", ""),
		event("new", "n0", ""), op("plain", OpMetadata, EncodeMetadata(NoMetadata)), event("plain", "p2", ""))
	if err != nil {
		t.Fatal(err)
	}
	base := int64(5)
	want := map[string]int64{"bounded": base + 1, "gone": base + 2, "new": base + 3, "plain": base + 4}
	if got := c.Moved(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("moved %v, want %v", got, want)
	}
}
