package controller

import "testing"

// The decoders of bytes from other nodes and from disk refuse what they
// cannot parse, never panic, and what parses encodes back the same.
func FuzzDecoders(f *testing.F) {
	f.Add(encodePropose(1, []byte("c")))
	f.Add(encodeResult(forwardResult{requestID: 2, status: statusFailed, index: 3, body: []byte("e")}))
	f.Add(encodeSnapshot(5, []byte("s")))
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
		_, _, _ = decodeMetaState(b)
		_, _, _ = decodeEntry(b)
	})
}
