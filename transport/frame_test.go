package transport

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// TestReadFrame reads frames back as written, and refuses what a peer
// must not send: frames over the bound (before reading their payload), a
// zero length, and ends inside a frame.
func TestReadFrame(t *testing.T) {
	two := AppendFrame(AppendFrame(nil, FrameRaftBatch, []byte("abc")), FrameNodeHeartbeat, nil)
	r := bytes.NewReader(two)
	typ, payload, err := ReadFrame(r, 64, nil)
	if err != nil || typ != FrameRaftBatch || string(payload) != "abc" {
		t.Fatalf("first frame: %v %q %v", typ, payload, err)
	}
	typ, payload, err = ReadFrame(r, 64, payload)
	if err != nil || typ != FrameNodeHeartbeat || len(payload) != 0 {
		t.Fatalf("second frame: %v %q %v", typ, payload, err)
	}
	if _, _, err := ReadFrame(r, 64, nil); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}

	large := AppendFrame(nil, FrameRaftBatch, make([]byte, 100))
	for _, tc := range []struct {
		name  string
		input []byte
		want  error
	}{
		{"over the bound", large, ErrFrameTooLarge},
		{"length zero", []byte{0, 0, 0, 0, 1}, ErrMalformed},
		{"torn length", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"torn type", []byte{0, 0, 0, 1}, io.ErrUnexpectedEOF},
		{"torn payload", two[:6], io.ErrUnexpectedEOF},
	} {
		_, _, err := ReadFrame(bytes.NewReader(tc.input), 64, nil)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// The bound is checked on the length alone: a reader refusing a frame
	// has consumed only its 4-byte length.
	r = bytes.NewReader(large)
	_, _, _ = ReadFrame(r, 64, nil)
	if r.Len() != len(large)-4 {
		t.Fatalf("refusing an oversized frame read %d bytes", len(large)-r.Len())
	}
}

// TestHandshake round-trips a handshake and refuses malformed ones and
// other versions.
func TestHandshake(t *testing.T) {
	h := Handshake{Version: protocolVersion, ClusterID: "c-Xy_12", NodeID: 3, Incarnation: 7}
	b, err := EncodeHandshake(h)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeHandshake(b); err != nil || got != h {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, h)
	}
	if _, err := EncodeHandshake(Handshake{ClusterID: strings.Repeat("x", 256)}); err == nil {
		t.Fatal("a 256-byte cluster id encoded")
	}
	other := h
	other.Version = 2
	ob, _ := EncodeHandshake(other)
	for _, tc := range []struct {
		name  string
		input []byte
		want  error
	}{
		{"empty", nil, ErrMalformed},
		{"bad magic", append([]byte("CRNX"), b[4:]...), ErrMalformed},
		{"short", b[:len(b)-1], ErrMalformed},
		{"trailing byte", append(append([]byte(nil), b...), 0), ErrMalformed},
		{"other version", ob, ErrVersion},
	} {
		if _, err := DecodeHandshake(tc.input); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestRaftBatch round-trips messages of several groups, a group appearing
// twice, through the payload and raftpb, and refuses malformed payloads.
func TestRaftBatch(t *testing.T) {
	msgs := map[uint64][]*raftpb.Message{
		0: {heartbeat(1, 2, 5)},
		7: {heartbeat(1, 2, 6), appendMessage(1, 2, 6, 10, []byte("entry"))},
	}
	groups := []GroupMessages{marshalGroup(t, 7, msgs[7][:1]), marshalGroup(t, 0, msgs[0]), marshalGroup(t, 7, msgs[7][1:])}
	payload := AppendRaftBatch(nil, groups)
	size := raftBatchHeaderBytes
	for _, g := range groups {
		size += g.encodedBytes()
	}
	if len(payload) != size {
		t.Fatalf("payload of %d bytes, encodedBytes sum to %d", len(payload), size)
	}
	parsed, err := ParseRaftBatch(payload)
	if err != nil || !reflect.DeepEqual(parsed, groups) {
		t.Fatalf("parsed %v, %v", parsed, err)
	}
	var got []*raftpb.Message
	for _, g := range parsed {
		m, err := UnmarshalMessages(g)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m...)
	}
	want := []*raftpb.Message{msgs[7][0], msgs[0][0], msgs[7][1]}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("message %d: %v, want %v", i, got[i], want[i])
		}
	}

	for _, tc := range []struct {
		name  string
		input []byte
	}{
		{"empty", nil},
		{"no groups, with bytes after", []byte{0, 0, 0, 0, 1}},
		{"group count beyond the bytes", []byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3}},
		{"group without messages", AppendRaftBatch(nil, []GroupMessages{{Group: 1}})},
		{"message count beyond the bytes", append(payload[:4+8:4+8], 0xff, 0xff, 0xff, 0xff)},
		{"torn message", payload[:len(payload)-1]},
		{"trailing byte", append(append([]byte(nil), payload...), 0)},
	} {
		if _, err := ParseRaftBatch(tc.input); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", tc.name, err)
		}
	}
	if groups, err := ParseRaftBatch(AppendRaftBatch(nil, nil)); err != nil || len(groups) != 0 {
		t.Errorf("a keepalive (no groups): %v, %v", groups, err)
	}
	bad := GroupMessages{Group: 1, Messages: [][]byte{{0xff}}}
	if _, err := UnmarshalMessages(bad); !errors.Is(err, ErrMalformed) {
		t.Errorf("a message that is not raftpb: %v, want ErrMalformed", err)
	}
}

func heartbeat(from, to, term uint64) *raftpb.Message {
	return &raftpb.Message{Type: raftpb.MessageType_MsgHeartbeat.Enum(), From: proto.Uint64(from), To: proto.Uint64(to), Term: proto.Uint64(term)}
}

func appendMessage(from, to, term, index uint64, data []byte) *raftpb.Message {
	e := &raftpb.Entry{Term: proto.Uint64(term), Index: proto.Uint64(index + 1), Type: raftpb.EntryType_EntryNormal.Enum(), Data: data}
	return &raftpb.Message{Type: raftpb.MessageType_MsgApp.Enum(), From: proto.Uint64(from), To: proto.Uint64(to),
		Term: proto.Uint64(term), Index: proto.Uint64(index), LogTerm: proto.Uint64(term), Entries: []*raftpb.Entry{e}}
}

func marshalGroup(t testing.TB, group uint64, msgs []*raftpb.Message) GroupMessages {
	g := GroupMessages{Group: group}
	for _, m := range msgs {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		g.Messages = append(g.Messages, b)
	}
	return g
}

// rid is the replica id of node's first incarnation: what raft messages
// between nodes carry.
func rid(node uint64) uint64 { return node<<IncarnationBits | 1 }
