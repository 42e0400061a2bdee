package aggregate

import (
	"errors"
	"testing"

	"github.com/cairnlog/cairn/client"
)

// TestSaveAllAtomic: SaveAll saves two aggregates of different topics
// together and updates both roots; when one of them moved since it was
// loaded, neither is written, the error names the one that moved, and
// both roots are left as they were.
func TestSaveAllAtomic(t *testing.T) {
	c := startServer(t)
	ctx := testContext(t)
	accounts, ledgers := newRepo(t, c, "accounts"), newRepo(t, c, "ledgers")
	a, err := accounts.Load(ctx, "a-1")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledgers.Load(ctx, "l-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SaveAll(ctx, c, accounts.Change(a, incrementEvent(0)), ledgers.Change(l, incrementEvent(0))); err != nil {
		t.Fatal(err)
	}
	if a.Revision != 0 || a.State.Count != 1 || l.Revision != 0 || l.State.Count != 1 {
		t.Fatalf("after SaveAll: a at %d (count %d), l at %d (count %d)", a.Revision, a.State.Count, l.Revision, l.State.Count)
	}

	// Another writer moves l-1: a SaveAll from the stale root writes nothing.
	other, err := ledgers.Load(ctx, "l-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledgers.Save(ctx, other, incrementEvent(1)); err != nil {
		t.Fatal(err)
	}
	_, err = SaveAll(ctx, c, accounts.Change(a, incrementEvent(1)), ledgers.Change(l, incrementEvent(1)))
	var multi *client.AppendMultiError
	if !errors.As(err, &multi) || len(multi.Mismatches) != 1 || multi.Mismatches[0].Part != 1 || multi.Mismatches[0].Actual != 1 {
		t.Fatalf("SaveAll over a moved aggregate: %v", err)
	}
	if a.Revision != 0 || a.State.Count != 1 || l.Revision != 0 {
		t.Fatalf("roots changed by a failed SaveAll: a at %d, l at %d", a.Revision, l.Revision)
	}
	reloaded, err := accounts.Load(ctx, "a-1")
	if err != nil || reloaded.Revision != 0 {
		t.Fatalf("a-1 after the failed SaveAll: %+v, %v", reloaded, err)
	}
}
