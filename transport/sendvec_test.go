package transport

import (
	"bytes"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairnlog/cairn/internal/testcerts"
)

// largeEntryMessages are messages whose entries mix Data above and below
// entryDataSharedBytesMin, empty and missing Data, with and without the
// fields after the entries (commit, snapshot, context).
func largeEntryMessages() []*raftpb.Message {
	large := func(seed byte, n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = seed + byte(i*7)
		}
		return b
	}
	m := appendMessage(rid(1), rid(2), 3, 10, large(1, entryDataSharedBytesMin))
	m.Commit = proto.Uint64(9)
	m.Context = []byte("ctx")
	m.Entries = append(m.Entries,
		&raftpb.Entry{Term: proto.Uint64(3), Index: proto.Uint64(12), Type: raftpb.EntryType_EntryNormal.Enum(), Data: []byte{5}},
		&raftpb.Entry{Term: proto.Uint64(3), Index: proto.Uint64(13)},
		&raftpb.Entry{Term: proto.Uint64(3), Index: proto.Uint64(14), Data: []byte{}},
		&raftpb.Entry{Term: proto.Uint64(3), Index: proto.Uint64(15), Type: raftpb.EntryType_EntryConfChangeV2.Enum(), Data: large(9, 1<<20+3)})
	only := appendMessage(rid(1), rid(2), 4, 20, large(2, 200_000))
	return []*raftpb.Message{m, only, appendMessage(rid(1), rid(2), 4, 21, []byte("small")), heartbeat(rid(1), rid(2), 4)}
}

// TestFrameVectorRoundTrip: the frame Send lays out in pieces parses back
// (ParseRaftBatch, UnmarshalMessages) into messages equal to those sent,
// in order, grouped as queued; and its length field counts exactly the
// bytes that follow.
func TestFrameVectorRoundTrip(t *testing.T) {
	msgs := largeEntryMessages()
	items := []item{raftItem(t, 7, msgs[:2]), raftItem(t, 8, msgs[2:]), raftItem(t, 7, msgs[3:])}
	bufs, _, total := frameVector(nil, items)
	frame := bytes.Join(bufs, nil)
	if len(frame) != total {
		t.Fatalf("frame of %d bytes, counted %d", len(frame), total)
	}
	typ, payload, err := ReadFrame(bytes.NewReader(frame), FrameBytesMaxDefault, nil)
	if err != nil || typ != FrameRaftBatch {
		t.Fatalf("read frame: %v %v", typ, err)
	}
	groups, err := ParseRaftBatch(payload)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]*raftpb.Message{msgs[:2], msgs[2:], msgs[3:]}
	if len(groups) != len(want) {
		t.Fatalf("%d groups, want %d", len(groups), len(want))
	}
	for i, g := range groups {
		if g.Group != items[i].group {
			t.Fatalf("group %d: id %d, want %d", i, g.Group, items[i].group)
		}
		got, err := UnmarshalMessages(g)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want[i]) {
			t.Fatalf("group %d: %d messages, want %d", i, len(got), len(want[i]))
		}
		for j := range got {
			if !proto.Equal(got[j], want[i][j]) {
				t.Fatalf("group %d message %d: got %v, want %v", i, j, got[j], want[i][j])
			}
		}
	}
}

// TestSendSharesLargeEntryData: an entry's Data of entryDataSharedBytesMin
// or more reaches the frame's pieces in place, not copied (a leader sends
// every entry to each follower); smaller Data is copied into the headers.
func TestSendSharesLargeEntryData(t *testing.T) {
	msgs := largeEntryMessages()
	bufs, _, _ := frameVector(nil, []item{raftItem(t, 1, msgs)})
	shared := map[*byte]bool{}
	for _, b := range bufs {
		shared[&b[0]] = true
	}
	for _, m := range msgs {
		for _, e := range m.Entries {
			large := len(e.Data) >= entryDataSharedBytesMin
			if large != shared[firstByte(e.Data)] {
				t.Fatalf("entry %d of %d bytes: shared %v", e.GetIndex(), len(e.Data), !large)
			}
		}
	}
}

// TestLargeEntriesBetweenNodes sends messages with large entries over TCP
// and over TLS (where the pieces are written in turn): they arrive equal.
func TestLargeEntriesBetweenNodes(t *testing.T) {
	for _, tls := range []bool{false, true} {
		var a, b *node
		if tls {
			dir := t.TempDir()
			ca := testcerts.NewCA(t, dir, "cluster")
			a = startNode(t, 1, "", func(c *Config) { c.TLS = peerTLS(t, ca, dir, "n1") })
			b = startNode(t, 2, "", func(c *Config) { c.TLS = peerTLS(t, ca, dir, "n2") })
		} else {
			a, b = startNode(t, 1, "", nil), startNode(t, 2, "", nil)
		}
		connect(t, a, b)
		msgs := largeEntryMessages()
		a.Send(2, 5, msgs)
		d := b.receive(t)
		if d.group != 5 || len(d.msgs) != len(msgs) {
			t.Fatalf("tls %v: delivery of group %d, %d messages", tls, d.group, len(d.msgs))
		}
		for i := range msgs {
			if !proto.Equal(d.msgs[i], msgs[i]) {
				t.Fatalf("tls %v: message %d differs", tls, i)
			}
		}
	}
}

func raftItem(t *testing.T, group uint64, msgs []*raftpb.Message) item {
	it := item{typ: FrameRaftBatch, group: group, bytes: raftBatchGroupHeaderBytes}
	for _, m := range msgs {
		b, err := marshalMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		it.messages = append(it.messages, b)
		it.bytes += raftBatchMessageHeaderBytes + b.encodedBytes()
	}
	return it
}

func firstByte(b []byte) *byte {
	if len(b) == 0 {
		return nil
	}
	return &b[0]
}
