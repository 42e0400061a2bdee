package controller

import "testing"

// The decoders of bytes from other nodes and from disk refuse what they
// cannot parse, never panic, and what parses encodes back the same.
func FuzzDecoders(f *testing.F) {
	f.Add(encodePropose(1, []byte("c")))
	f.Add(encodeResult(forwardResult{requestID: 2, status: statusFailed, index: 3, body: []byte("e")}))
	f.Add(encodeSnapshot(5, []byte("s")))
	f.Add(encodeNodeJoin(nodeJoin{requestID: 1, nodeID: 2, nonce: []byte("n"), raftAddr: "h:1"}))
	f.Add(encodeJoinAnswer(JoinAnswer{ClusterID: "c", Incarnation: 1, Peers: map[int32]string{1: "h:1", 2: "h:2"}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if id, cmd, err := decodePropose(b); err == nil && string(encodePropose(id, cmd)) != string(b) {
			t.Fatalf("propose % x re-encodes differently", b)
		}
		if r, err := decodeResult(b); err == nil && string(encodeResult(r)) != string(b) {
			t.Fatalf("result % x re-encodes differently", b)
		}
		if next, st, err := decodeSnapshot(b); err == nil && string(encodeSnapshot(next, st)) != string(b) {
			t.Fatalf("snapshot % x re-encodes differently", b)
		}
		if j, err := decodeNodeJoin(b); err == nil && string(encodeNodeJoin(j)) != string(b) {
			t.Fatalf("node join % x re-encodes differently", b)
		}
		if a, err := decodeJoinAnswer(1, b); err == nil && string(encodeJoinAnswer(a)) != string(b) {
			t.Fatalf("join answer % x re-encodes differently", b)
		}
		_, _, _ = decodeMetaState(b)
		_, _, _ = decodeEntry(b)
	})
}
