package transport

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// FuzzReadFrame checks that reading frames from arbitrary bytes never
// panics, fails only with the documented errors, never returns a frame
// over the bound, and that the frames read write back to the bytes
// consumed.
func FuzzReadFrame(f *testing.F) {
	f.Add(AppendFrame(AppendFrame(nil, FrameRaftBatch, []byte("abc")), FrameHandshake, nil))
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Add([]byte{0, 0, 0, 3, 2, 1})
	const bytesMax = 256
	f.Fuzz(func(t *testing.T, input []byte) {
		r := bytes.NewReader(input)
		var again []byte
		for {
			typ, payload, err := ReadFrame(r, bytesMax, nil)
			if err != nil {
				if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) &&
					!errors.Is(err, ErrFrameTooLarge) && !errors.Is(err, ErrMalformed) {
					t.Fatalf("unexpected error %v", err)
				}
				if err == io.EOF && !bytes.Equal(again, input) {
					t.Fatalf("frames re-encode to %x, input %x", again, input)
				}
				return
			}
			if len(payload)+1 > bytesMax {
				t.Fatalf("frame of %d bytes returned, bound %d", len(payload)+1, bytesMax)
			}
			again = AppendFrame(again, typ, payload)
		}
	})
}

// FuzzHandshake checks that decoding arbitrary bytes never panics, fails
// only with ErrMalformed or ErrVersion, and that a handshake that decodes
// encodes back to the same bytes.
func FuzzHandshake(f *testing.F) {
	sample, _ := EncodeHandshake(Handshake{Version: protocolVersion, ClusterID: "cluster", NodeID: 1, Incarnation: 1})
	f.Add(sample)
	f.Add([]byte("CRNT"))
	f.Add(sample[:len(sample)-1])
	f.Fuzz(func(t *testing.T, input []byte) {
		h, err := DecodeHandshake(input)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrVersion) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		again, err := EncodeHandshake(h)
		if err != nil || !bytes.Equal(again, input) {
			t.Fatalf("%+v re-encodes to %x (%v), input %x", h, again, err, input)
		}
	})
}

// FuzzRaftBatch checks that parsing arbitrary bytes as a RaftBatch never
// panics and fails only with ErrMalformed, that what parses encodes back
// to the same bytes, and that unmarshalling its messages never panics.
func FuzzRaftBatch(f *testing.F) {
	f.Add(AppendRaftBatch(nil, []GroupMessages{
		marshalGroup(f, 3, []*raftpb.Message{heartbeat(1, 2, 3)}),
		marshalGroup(f, 0, []*raftpb.Message{appendMessage(1, 2, 3, 4, []byte("data"))}),
	}))
	g := marshalGroup(f, 9, nil)
	g.Messages = [][]byte{{0x08, 0x03}, {}}
	f.Add(AppendRaftBatch(nil, []GroupMessages{g}))
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, input []byte) {
		groups, err := ParseRaftBatch(input)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if again := AppendRaftBatch(nil, groups); !bytes.Equal(again, input) {
			t.Fatalf("re-encodes to %x, input %x", again, input)
		}
		for _, g := range groups {
			if _, err := UnmarshalMessages(g); err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error %v", err)
			}
		}
	})
}

// FuzzPing checks that parsing arbitrary bytes as a Ping or Pong never
// panics, fails only with ErrMalformed, and that what parses encodes back
// to the same bytes.
func FuzzPing(f *testing.F) {
	f.Add(AppendPing(nil, 7))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, input []byte) {
		seq, err := ParsePing(input)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if again := AppendPing(nil, seq); !bytes.Equal(again, input) {
			t.Fatalf("re-encodes to %x, input %x", again, input)
		}
	})
}
