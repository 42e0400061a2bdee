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
	a.Send(2, 0, []*raftpb.Message{heartbeat(1, 2, 1)}) // fills the channel
	a.Send(3, 0, []*raftpb.Message{heartbeat(1, 3, 1)}) // finds it full
	a.waitUnreachable(t, 2)
	a.Send(3, 0, []*raftpb.Message{heartbeat(1, 3, 1)})
	a.waitUnreachable(t, 3)
}
