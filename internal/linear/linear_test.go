package linear

import (
	"slices"
	"testing"

	"github.com/anishathalye/porcupine"
)

// TestLinearModels: the models accept small hand-made histories that are
// linearizable and refuse ones that are not.
func TestLinearModels(t *testing.T) {
	commit := func(client int, call, ret int64, offset int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: OffsetInput{Key: "g/t-0", Commit: true, Offset: offset}, Output: OffsetOutput{}}
	}
	fetch := func(client int, call, ret int64, got int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: OffsetInput{Key: "g/t-0"}, Output: OffsetOutput{Offset: got}}
	}
	appendAt := func(client int, call, ret int64, expected int64, id uint32, out StreamOutput) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: StreamInput{Kind: StreamAppend, Expected: expected, ID: id}, Output: out}
	}
	readLast := func(client int, call, ret int64, last int64, ids ...uint32) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: StreamInput{Kind: StreamReadLast}, Output: StreamOutput{Revision: last, Events: EncodeIDs(ids...)}}
	}
	readAll := func(client int, call, ret int64, ids ...uint32) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: StreamInput{Kind: StreamReadAll}, Output: StreamOutput{Revision: int64(len(ids)) - 1, Events: EncodeIDs(ids...)}}
	}
	acked := func(revision int64) StreamOutput { return StreamOutput{OK: true, Revision: revision} }
	refused := func(last int64) StreamOutput { return StreamOutput{Revision: last} }
	unknown := StreamOutput{Unknown: true}
	const end = 1000 // the return of an operation of unknown outcome
	tests := []struct {
		name    string
		model   porcupine.Model
		history []porcupine.Operation
		want    bool
	}{
		{"offsets: none committed", OffsetsModel, []porcupine.Operation{fetch(0, 0, 1, -1)}, true},
		{"offsets: read after commit", OffsetsModel, []porcupine.Operation{commit(0, 0, 1, 5), fetch(1, 2, 3, 5)}, true},
		{"offsets: concurrent commits in either order", OffsetsModel, []porcupine.Operation{
			commit(0, 0, 10, 5), commit(1, 0, 10, 6), fetch(2, 11, 12, 5), fetch(2, 13, 14, 5)}, true},
		{"offsets: stale read", OffsetsModel, []porcupine.Operation{commit(0, 0, 1, 5), commit(0, 2, 3, 6), fetch(1, 4, 5, 5)}, false},
		{"offsets: read flips back", OffsetsModel, []porcupine.Operation{
			commit(0, 0, 10, 5), commit(1, 0, 10, 6), fetch(2, 11, 12, 5), fetch(2, 13, 14, 6), fetch(2, 15, 16, 5)}, false},
		{"offsets: unknown commit seen late", OffsetsModel, []porcupine.Operation{
			commit(0, 0, end, 7), fetch(1, 5, 6, -1), fetch(1, 7, 8, 7)}, true},
		{"offsets: unknown commit never seen", OffsetsModel, []porcupine.Operation{commit(0, 0, end, 7), fetch(1, 5, 6, -1)}, true},
		{"offsets: value never committed", OffsetsModel, []porcupine.Operation{commit(0, 0, 1, 5), fetch(1, 2, 3, 4)}, false},

		{"stream: appends and reads", StreamModel, []porcupine.Operation{
			appendAt(0, 0, 1, -1, 1, acked(0)), appendAt(1, 2, 3, 0, 2, acked(1)), readLast(0, 4, 5, 1, 2), readAll(1, 4, 5, 1, 2)}, true},
		{"stream: one of two racing appends refused", StreamModel, []porcupine.Operation{
			appendAt(0, 0, 10, -1, 1, acked(0)), appendAt(1, 0, 10, -1, 2, refused(0)), readAll(2, 11, 12, 1)}, true},
		{"stream: both racing appends acknowledged", StreamModel, []porcupine.Operation{
			appendAt(0, 0, 10, -1, 1, acked(0)), appendAt(1, 0, 10, -1, 2, acked(0))}, false},
		{"stream: refused with a wrong actual revision", StreamModel, []porcupine.Operation{
			appendAt(0, 0, 1, -1, 1, acked(0)), appendAt(1, 2, 3, 5, 2, refused(-1))}, false},
		{"stream: any appends at the end", StreamModel, []porcupine.Operation{
			appendAt(0, 0, 1, -1, 1, acked(0)), appendAt(1, 2, 3, ExpectAny, 2, acked(1)), readLast(0, 4, 5, 1, 2)}, true},
		{"stream: acknowledged append lost", StreamModel, []porcupine.Operation{
			appendAt(0, 0, 1, -1, 1, acked(0)), readLast(1, 2, 3, -1)}, false},
		{"stream: stale last event", StreamModel, []porcupine.Operation{
			appendAt(0, 0, 1, -1, 1, acked(0)), appendAt(0, 2, 3, 0, 2, acked(1)), readLast(1, 4, 5, 0, 1)}, false},
		{"stream: unknown append seen", StreamModel, []porcupine.Operation{
			appendAt(0, 0, end, -1, 1, unknown), readAll(1, 5, 6), readAll(1, 7, 8, 1), appendAt(1, 9, 10, 0, 2, acked(1))}, true},
		{"stream: unknown append never seen", StreamModel, []porcupine.Operation{
			appendAt(0, 0, end, -1, 1, unknown), appendAt(1, 1, 2, -1, 2, acked(0)), readAll(1, 3, 4, 2)}, true},
		{"stream: unknown append seen and then gone", StreamModel, []porcupine.Operation{
			appendAt(0, 0, end, -1, 1, unknown), readAll(1, 5, 6, 1), readAll(1, 7, 8)}, false},
		{"stream: events reordered", StreamModel, []porcupine.Operation{
			appendAt(0, 0, 1, -1, 1, acked(0)), appendAt(0, 2, 3, 0, 2, acked(1)), readAll(1, 4, 5, 2, 1)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := porcupine.CheckOperations(tt.model, tt.history); got != tt.want {
				t.Fatalf("linearizable: %t, want %t", got, tt.want)
			}
		})
	}
}

// TestResolveAppends: unknown appends take the outcome the final stream
// shows, and a history that was legal only while an outcome was open
// turns illegal once it is known.
func TestResolveAppends(t *testing.T) {
	op := func(client int, call, ret int64, in StreamInput, out StreamOutput) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: in, Output: out}
	}
	const end = 1000
	unknown := StreamOutput{Unknown: true}
	history := []porcupine.Operation{
		op(0, 0, end, StreamInput{Kind: StreamAppend, Expected: -1, ID: 1}, unknown),
		op(1, 1, 2, StreamInput{Kind: StreamAppend, Expected: -1, ID: 2}, StreamOutput{OK: true, Revision: 0}),
		op(2, 3, end, StreamInput{Kind: StreamAppend, Expected: 0, ID: 3}, unknown),
		op(1, 4, 5, StreamInput{Kind: StreamReadAll}, StreamOutput{Revision: 0, Events: EncodeIDs(2)}),
	}
	got := ResolveAppends(slices.Clone(history), []uint32{2, 3})
	if len(got) != 3 {
		t.Fatalf("resolved %d operations, want 3 (append of e1 left out): %v", len(got), got)
	}
	if out := got[1].Output.(StreamOutput); !out.OK || out.Revision != 1 || out.Unknown {
		t.Fatalf("append of e3 resolved to %+v, want acknowledged at 1", out)
	}
	if !porcupine.CheckOperations(StreamModel, got) {
		t.Fatal("resolved history refused")
	}
	// A read saw e1 after e2, and the final stream has no e1: with e1's
	// outcome open that is legal (e1 landed at 1); resolved, e1 leaves the
	// history and the read cannot be explained — the event was lost.
	seen := []porcupine.Operation{
		op(0, 0, end, StreamInput{Kind: StreamAppend, Expected: ExpectAny, ID: 1}, unknown),
		op(1, 1, 2, StreamInput{Kind: StreamAppend, Expected: -1, ID: 2}, StreamOutput{OK: true, Revision: 0}),
		op(1, 6, 7, StreamInput{Kind: StreamReadAll}, StreamOutput{Revision: 1, Events: EncodeIDs(2, 1)}),
	}
	if !porcupine.CheckOperations(StreamModel, seen) {
		t.Fatal("the open history was refused")
	}
	if porcupine.CheckOperations(StreamModel, ResolveAppends(seen, []uint32{2})) {
		t.Fatal("a read of an event the final stream does not hold passed")
	}
}

// TestDropUnseenCommits: an unknown commit no fetch saw leaves the history;
// one a fetch saw stays, and the verdict is the same either way.
func TestDropUnseenCommits(t *testing.T) {
	commit := func(client int, call, ret int64, offset int64, unknown bool) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: OffsetInput{Key: "g/t-0", Commit: true, Offset: offset}, Output: OffsetOutput{Unknown: unknown}}
	}
	fetch := func(client int, call, ret int64, got int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: OffsetInput{Key: "g/t-0"}, Output: OffsetOutput{Offset: got}}
	}
	const end = 1000
	for _, tc := range []struct {
		name    string
		history []porcupine.Operation
		kept    int
		legal   bool
	}{
		{"unseen unknown commit dropped", []porcupine.Operation{
			commit(0, 0, end, 7, true), commit(1, 1, 2, 8, false), fetch(2, 3, 4, 8)}, 2, true},
		{"seen unknown commit kept", []porcupine.Operation{
			commit(0, 0, end, 7, true), commit(1, 1, 2, 8, false), fetch(2, 3, 4, 7)}, 3, true},
		{"stale read still refused", []porcupine.Operation{
			commit(0, 0, end, 7, true), commit(1, 1, 2, 8, false), commit(1, 3, 4, 9, false), fetch(2, 5, 6, 8)}, 3, false},
	} {
		got := DropUnseenCommits(slices.Clone(tc.history))
		if len(got) != tc.kept {
			t.Errorf("%s: kept %d operations, want %d", tc.name, len(got), tc.kept)
		}
		before, after := porcupine.CheckOperations(OffsetsModel, tc.history), porcupine.CheckOperations(OffsetsModel, got)
		if before != tc.legal || after != tc.legal {
			t.Errorf("%s: linearizable %v before, %v after; want %v", tc.name, before, after, tc.legal)
		}
	}
}
