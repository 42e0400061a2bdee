package streams

import (
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cairnlog/cairn/batch"
)

// TestDeleteBelowRemovesEveryKey: deleting a long prefix of a stream in
// steps of a few entries removes the revision, id and offset keys of every
// event below the cut, and nothing at or above it, however many steps it
// takes.
func TestDeleteBelowRemovesEveryKey(t *testing.T) {
	x := openTemp(t)
	var recs []batch.Record
	for i := range 30 {
		recs = append(recs, event("s", "id"+strconv.Itoa(i), ""))
	}
	if _, err := appendRecs(t, x, recs...); err != nil {
		t.Fatal(err)
	}
	const stepMax, cut = 4, 25
	deleteBelow(t, x, "s", cut, stepMax)
	for rev := range int64(30) {
		_, idKept, err := x.RevisionOfID("s", "id"+strconv.FormatInt(rev, 10))
		if err != nil {
			t.Fatal(err)
		}
		_, offsetKept, err := x.RevisionAt(rev) // event rev is at offset rev
		if err != nil {
			t.Fatal(err)
		}
		_, entryKept, err := x.Entry("s", rev)
		if err != nil {
			t.Fatal(err)
		}
		if want := rev >= cut; idKept != want || offsetKept != want || entryKept != want {
			t.Errorf("revision %d: id kept %v, offset kept %v, entry kept %v; want %v",
				rev, idKept, offsetKept, entryKept, want)
		}
	}
}

// deleteBelow runs DeleteBelow in steps of stepMax until it is done, as the
// stream cleaner does, and returns how many steps it took.
func deleteBelow(t *testing.T, x *Index, stream string, rev int64, stepMax int) int {
	t.Helper()
	for steps := 1; steps <= 1000; steps++ {
		done, err := x.DeleteBelow(stream, rev, stepMax)
		if err != nil {
			t.Fatal(err)
		}
		if done {
			return steps
		}
	}
	t.Fatal("DeleteBelow not done after 1000 steps")
	return 0
}

// TestDeleteBelowResumesAfterRestart: a deletion stopped after a few steps
// (the process stopped) goes on after the index is reopened, from the
// entries still listed, and each step removes at most its bound.
func TestDeleteBelowResumesAfterRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "idx")
	x, err := Open(dir, 0, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var recs []batch.Record
	for i := range 20 {
		recs = append(recs, event("s", "id"+strconv.Itoa(i), ""))
	}
	if _, err := appendRecs(t, x, recs...); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if done, err := x.DeleteBelow("s", 15, 3); err != nil || done {
			t.Fatalf("step: done %v err %v, want more to do", done, err)
		}
	}
	if e, _ := x.Entries("s", 0, false, 100); len(e) != 14 || e[0].Revision != 6 {
		t.Fatalf("after two steps of 3 the index lists %d entries from %v, want 14 from revision 6", len(e), e)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if x, err = Open(dir, 20, Options{}); err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if steps := deleteBelow(t, x, "s", 15, 3); steps != 4 {
		t.Fatalf("resumed deletion took %d steps, want 4 (9 entries left below the cut, 3 a step, one to see the cut)", steps)
	}
	if e, _ := x.Entries("s", 0, false, 100); len(e) != 5 || e[0].Revision != 15 {
		t.Fatalf("after resuming the index lists %v, want revisions 15-19", e)
	}
	if _, ok, _ := x.RevisionOfID("s", "id3"); ok {
		t.Fatal("the id of an entry deleted before the restart is still known")
	}
}

// TestDeleteBelowRefusesAnEmptyStep: a step bound below 1 would never finish.
func TestDeleteBelowRefusesAnEmptyStep(t *testing.T) {
	if _, err := openTemp(t).DeleteBelow("s", 10, 0); err == nil {
		t.Fatal("accepted a step of 0 entries")
	}
}
