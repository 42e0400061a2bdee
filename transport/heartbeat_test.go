package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

// replicaOf is the replica id of node's incarnation.
func replicaOf(node, incarnation uint64) uint64 { return node<<IncarnationBits | incarnation }

func TestNodeHeartbeatRoundTrip(t *testing.T) {
	for _, h := range []NodeHeartbeat{
		{NodeID: 1, Incarnation: 1, Sequence: 1, SentUnixMs: 1_700_000_000_000, Full: true},
		{NodeID: 2, Incarnation: 3, BootID: 1<<63 | 5, Sequence: 9, SentUnixMs: -5, Full: true, Entries: []LeaderEntry{
			{Group: 0, Term: 4, Leader: replicaOf(2, 3)},
			{Group: 17, Term: 2, Leader: replicaOf(2, 3)},
		}},
		{NodeID: 2, Incarnation: 3, Sequence: 10, WantFull: true, Entries: []LeaderEntry{
			{Group: 5, Term: 6, Leader: 0},
			{Group: 1 << 40, Term: 1, Leader: replicaOf(2, 3)},
		}},
	} {
		payload := AppendNodeHeartbeat(nil, h)
		if want := heartbeatHeaderBytes + len(h.Entries)*heartbeatEntryBytes; len(payload) != want {
			t.Fatalf("%+v: %d bytes, want %d", h, len(payload), want)
		}
		got, err := ParseNodeHeartbeat(payload)
		if err != nil {
			t.Fatalf("%+v: %v", h, err)
		}
		if !reflect.DeepEqual(got, h) {
			t.Fatalf("decoded %+v, want %+v", got, h)
		}
	}
}

// TestNodeHeartbeatMalformed shows each refusal, each an ErrMalformed.
func TestNodeHeartbeatMalformed(t *testing.T) {
	leader := replicaOf(2, 1)
	valid := AppendNodeHeartbeat(nil, NodeHeartbeat{NodeID: 2, Incarnation: 1, Sequence: 1, Entries: []LeaderEntry{
		{Group: 1, Term: 1, Leader: leader}, {Group: 2, Term: 1, Leader: leader},
	}})
	countAt := heartbeatHeaderBytes - 4
	withCount := func(n uint32) []byte {
		b := bytes.Clone(valid)
		binary.BigEndian.PutUint32(b[countAt:], n)
		return b
	}
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"empty", nil},
		{"header cut", valid[:heartbeatHeaderBytes-1]},
		{"entry cut", valid[:len(valid)-1]},
		{"trailing byte", append(bytes.Clone(valid), 0)},
		{"count beyond bytes", withCount(1 << 30)},
		{"count short of bytes", withCount(1)},
		{"unknown flag", func() []byte { b := bytes.Clone(valid); b[countAt-1] = 4; return b }()},
		{"groups repeated", AppendNodeHeartbeat(nil, NodeHeartbeat{NodeID: 2, Entries: []LeaderEntry{
			{Group: 3, Term: 1, Leader: leader}, {Group: 3, Term: 2, Leader: leader}}})},
		{"groups descending", AppendNodeHeartbeat(nil, NodeHeartbeat{NodeID: 2, Entries: []LeaderEntry{
			{Group: 4, Term: 1, Leader: leader}, {Group: 3, Term: 1, Leader: leader}}})},
		{"leader on another node", AppendNodeHeartbeat(nil, NodeHeartbeat{NodeID: 3, Entries: []LeaderEntry{
			{Group: 4, Term: 1, Leader: leader}}})},
		{"full list without leader", AppendNodeHeartbeat(nil, NodeHeartbeat{NodeID: 2, Full: true, Entries: []LeaderEntry{
			{Group: 4, Term: 1}}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseNodeHeartbeat(tc.payload); !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v, want ErrMalformed", err)
			}
		})
	}
}

// FuzzNodeHeartbeat checks that parsing arbitrary bytes never panics,
// fails only with ErrMalformed, and that what parses encodes back to the
// same bytes.
func FuzzNodeHeartbeat(f *testing.F) {
	leader := replicaOf(7, 2)
	f.Add(AppendNodeHeartbeat(nil, NodeHeartbeat{NodeID: 7, Incarnation: 2, Sequence: 3, SentUnixMs: 1000, Full: true,
		Entries: []LeaderEntry{{Group: 0, Term: 2, Leader: leader}, {Group: 9, Term: 5, Leader: leader}}}))
	f.Add(AppendNodeHeartbeat(nil, NodeHeartbeat{NodeID: 7, Incarnation: 2, Sequence: 4,
		Entries: []LeaderEntry{{Group: 9, Term: 6}}}))
	f.Add(make([]byte, heartbeatHeaderBytes))
	f.Fuzz(func(t *testing.T, input []byte) {
		h, err := ParseNodeHeartbeat(input)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if again := AppendNodeHeartbeat(nil, h); !bytes.Equal(again, input) {
			t.Fatalf("%+v re-encodes to %x, input %x", h, again, input)
		}
	})
}
