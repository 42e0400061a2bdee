package streams

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/cairnlog/cairn/batch"
)

// batchAt checks recs as producer's batch at offsets from base through the
// table and, when admitted, holds it (a transaction) or commits it (-1).
func batchAt(t *testing.T, x *Index, p *Pending, producer int64, base int64, recs ...batch.Record) (*Change, error) {
	t.Helper()
	c := p.Begin(x, producer)
	for i, r := range recs {
		if err := c.Check(r, base+int64(i)); err != nil {
			return nil, err
		}
	}
	if err := c.Result(); err != nil {
		return nil, err
	}
	if err := p.Admit(c, producer); err != nil {
		return nil, err
	}
	if producer < 0 {
		if err := x.Commit(c); err != nil {
			t.Fatal(err)
		}
		return c, nil
	}
	p.Hold(producer, c)
	return c, nil
}

func lastRevision(t *testing.T, x *Index, stream string) int64 {
	t.Helper()
	st, err := x.State(stream)
	if err != nil {
		t.Fatal(err)
	}
	return st.LastRevision
}

// TestPendingCommitAndAbort: a transaction's events get their revisions
// when written, but the index learns them only when the transaction
// commits; meanwhile any other write to the streams it holds is refused
// as busy, and one of its own later batches continues from its reserved
// revisions. An aborted transaction leaves the index as it was and frees
// its streams.
func TestPendingCommitAndAbort(t *testing.T) {
	x := openTemp(t)
	p := NewPending()
	if _, err := batchAt(t, x, p, -1, 0, event("a", "a0", "no-stream")); err != nil {
		t.Fatal(err)
	}
	c, err := batchAt(t, x, p, 7, 1, event("a", "a1", "0"), event("b", "b0", "no-stream"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Appended(); len(got) != 2 || got[0].First != 1 || got[1].First != 0 {
		t.Fatalf("reserved revisions %+v, want a at 1 and b at 0", got)
	}
	if a, b := lastRevision(t, x, "a"), lastRevision(t, x, "b"); a != 0 || b != -1 {
		t.Fatalf("before the marker the index has a at %d and b at %d, want 0 and none", a, b)
	}
	for _, producer := range []int64{-1, 8} {
		if _, err := batchAt(t, x, p, producer, 3, event("a", "x", "any")); !errors.Is(err, ErrStreamBusy) {
			t.Fatalf("producer %d writing a held stream: %v, want ErrStreamBusy", producer, err)
		}
	}
	if _, err := batchAt(t, x, p, 8, 3, event("c", "c0", "no-stream")); err != nil {
		t.Fatalf("another transaction on a free stream: %v", err)
	}
	// The transaction's own next batch sees its reserved revisions; a
	// wrong expectation is refused and leaves what it holds unchanged.
	if _, err := batchAt(t, x, p, 7, 4, event("a", "a2", "0")); !errors.Is(err, ErrWrongExpectedRevision) {
		t.Fatalf("expecting the committed revision inside the transaction: %v", err)
	}
	if _, err := batchAt(t, x, p, 7, 4, event("a", "a2", "1")); err != nil {
		t.Fatal(err)
	}

	if err := x.Commit(p.End(7)); err != nil {
		t.Fatal(err)
	}
	if a, b := lastRevision(t, x, "a"), lastRevision(t, x, "b"); a != 2 || b != 0 {
		t.Fatalf("after COMMIT the index has a at %d and b at %d, want 2 and 0", a, b)
	}
	if e, ok, err := x.Entry("a", 2); err != nil || !ok || e.Offset != 4 || e.ID != "a2" {
		t.Fatalf("a@2 is %+v %v %v, want a2 at offset 4", e, ok, err)
	}
	if _, err := batchAt(t, x, p, -1, 5, event("a", "a3", "2")); err != nil {
		t.Fatalf("after COMMIT the stream is free: %v", err)
	}

	if held := p.End(8); held == nil || len(held.Appended()) != 1 { // ABORT: dropped
		t.Fatalf("producer 8 held %+v", held)
	}
	if c := lastRevision(t, x, "c"); c != -1 {
		t.Fatalf("after ABORT c is at %d, want none", c)
	}
	if _, err := batchAt(t, x, p, -1, 6, event("c", "c0", "no-stream")); err != nil {
		t.Fatalf("after ABORT the stream is free and new: %v", err)
	}
	if ids := p.Producers(); len(ids) != 0 {
		t.Fatalf("producers still holding: %v", ids)
	}
}

// TestPendingReplayMatchesChecks: replaying the same log (Apply, markers
// ending the transactions) gives the index the checks gave it.
func TestPendingReplayMatchesChecks(t *testing.T) {
	type step struct {
		producer int64
		rec      batch.Record
		end      int // 0 none, 1 commit, 2 abort (rec unused)
	}
	log := []step{
		{producer: -1, rec: event("a", "a0", "no-stream")},
		{producer: 7, rec: event("a", "a1", "0")},
		{producer: 8, rec: event("b", "b0", "no-stream")},
		{producer: 7, rec: event("c", "c0", "no-stream")},
		{producer: 8, end: 2},
		{producer: -1, rec: event("b", "b0'", "no-stream")},
		{producer: 7, end: 1},
	}
	run := func(check bool) *Index {
		x := openTemp(t)
		p := NewPending()
		for offset, s := range log {
			if s.end != 0 {
				if held := p.End(s.producer); held != nil && s.end == 1 {
					if err := x.Commit(held); err != nil {
						t.Fatal(err)
					}
				}
				continue
			}
			c := p.Begin(x, s.producer)
			add := c.Apply
			if check {
				add = c.Check
			}
			if err := add(s.rec, int64(offset)); err != nil {
				t.Fatalf("offset %d: %v", offset, err)
			}
			if err := p.Admit(c, s.producer); err != nil {
				t.Fatalf("offset %d: %v", offset, err)
			}
			if s.producer < 0 {
				if err := x.Commit(c); err != nil {
					t.Fatal(err)
				}
			} else {
				p.Hold(s.producer, c)
			}
		}
		return x
	}
	checked, replayed := run(true), run(false)
	for _, stream := range []string{"a", "b", "c"} {
		want, got := lastRevision(t, checked, stream), lastRevision(t, replayed, stream)
		if want != got {
			t.Errorf("%s: checked to %d, replayed to %d", stream, want, got)
		}
	}
	if a, b, c := lastRevision(t, checked, "a"), lastRevision(t, checked, "b"), lastRevision(t, checked, "c"); a != 1 || b != 0 || c != 0 {
		t.Fatalf("a %d b %d c %d, want 1 0 0", a, b, c)
	}
	if e, ok, _ := checked.Entry("b", 0); !ok || e.ID != "b0'" {
		t.Fatalf("b@0 is %+v, want the event appended after the abort", e)
	}
}

// TestHeldSurvivesReopen: the first offset of the oldest open transaction
// (Pending.First, stored with SetHeld) is kept across a reopen, and a
// replay starts there when it is below the covered offset; an index
// rebuilt over a shorter log forgets it with everything else.
func TestHeldSurvivesReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "idx")
	x, err := Open(dir, 0, Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := NewPending()
	if _, err := batchAt(t, x, p, -1, 0, event("a", "a0", "no-stream")); err != nil {
		t.Fatal(err)
	}
	if _, err := batchAt(t, x, p, 7, 1, event("b", "b0", "no-stream")); err != nil {
		t.Fatal(err)
	}
	if _, err := batchAt(t, x, p, 8, 2, event("c", "c0", "no-stream")); err != nil {
		t.Fatal(err)
	}
	if _, err := batchAt(t, x, p, -1, 3, event("a", "a1", "0")); err != nil {
		t.Fatal(err)
	}
	if p.First() != 1 || x.Next() != 4 {
		t.Fatalf("oldest open transaction at %d, index covers to %d; want 1 and 4", p.First(), x.Next())
	}
	if err := x.SetHeld(p.First()); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if x, err = Open(dir, 4, Options{}); err != nil {
		t.Fatal(err)
	}
	if x.Held() != 1 || x.ReplayStart() != 1 {
		t.Fatalf("reopened: held %d, replay from %d; want 1 and 1", x.Held(), x.ReplayStart())
	}
	// The first transaction ends: the replay starts at the second.
	p.End(7)
	if err := x.SetHeld(p.First()); err != nil || x.ReplayStart() != 2 {
		t.Fatalf("after one transaction ended: replay from %d, %v; want 2", x.ReplayStart(), err)
	}
	_ = x.Close()
	if x, err = Open(dir, 1, Options{}); err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if x.Held() != -1 || x.ReplayStart() != 0 {
		t.Fatalf("rebuilt over a shorter log: held %d, replay from %d; want none and 0", x.Held(), x.ReplayStart())
	}
}
