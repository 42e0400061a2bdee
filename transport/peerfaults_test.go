package transport

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// TestUnreachableReportNotLostWhenFull: a report that finds the channel
// full is not counted as made, so the next loss to that peer reports it.
func TestUnreachableReportNotLostWhenFull(t *testing.T) {
	a := startNode(t, 1, "", func(c *Config) { c.UnreachableReportsMax = 1 })
	for _, id := range []uint64{2, 3} {
		if err := a.AddPeer(id, "127.0.0.1:1"); err != nil { // nobody listens on port 1
			t.Fatal(err)
		}
	}
	a.Send(2, 0, []*raftpb.Message{heartbeat(rid(1), rid(2), 1)}) // fills the channel
	a.Send(3, 0, []*raftpb.Message{heartbeat(rid(1), rid(3), 1)}) // finds it full
	a.waitUnreachable(t, 2)
	a.Send(3, 0, []*raftpb.Message{heartbeat(rid(1), rid(3), 1)})
	a.waitUnreachable(t, 3)
}

// TestInboundMessagesCheckedAgainstTheLink: a message whose sender is not
// a replica of the node that handshook, or that is not addressed to a
// replica of this node, is dropped and counted; the rest of the frame is
// delivered.
func TestInboundMessagesCheckedAgainstTheLink(t *testing.T) {
	b := startNode(t, 2, "", nil)
	if err := b.AddPeer(1, "unused"); err != nil {
		t.Fatal(err)
	}
	fake := dialFake(t, b.Addr().String(), "cluster-1", 1)
	if _, err := fake.handshake(); err != nil {
		t.Fatal(err)
	}
	msgs := []*raftpb.Message{
		heartbeat(rid(3), rid(2), 1), // node 1 speaking for node 3
		heartbeat(rid(1), rid(2), 2),
		heartbeat(rid(1), rid(5), 3), // for node 5
	}
	frame := AppendFrame(nil, FrameRaftBatch, AppendRaftBatch(nil, []GroupMessages{marshalGroup(t, 4, msgs)}))
	if _, err := fake.conn.Write(frame); err != nil {
		t.Fatal(err)
	}
	d := b.receive(t)
	if len(d.msgs) != 1 || d.msgs[0].GetTerm() != 2 {
		t.Fatalf("delivered %+v, want only the heartbeat of term 2", d.msgs)
	}
	if m := b.Metrics(); m.MessagesMisaddressed != 2 || m.MessagesReceived != 1 {
		t.Fatalf("metrics %+v, want 2 misaddressed and 1 received", m)
	}
}
