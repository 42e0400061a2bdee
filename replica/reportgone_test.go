package replica

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// TestSchedulerReportGoneElectsWithoutTicks: six quiesced groups on three
// schedulers, two of them led by node 1. Node 1 is cut off while the
// liveness still calls it alive (its death not yet noticed); ReportGone
// on nodes 2 and 3 wakes only the two groups it led, which elect node 2
// with no tick at all, while the four others stay quiesced.
func TestSchedulerReportGoneElectsWithoutTicks(t *testing.T) {
	const groups = 6
	qn := startQuiescedGroups(t, groups)
	const dead = 1
	qn.net.drop = func(m *raftpb.Message) bool { return m.GetTo() == dead || m.GetFrom() == dead }
	for _, node := range []uint64{2, 3} {
		qn.net.nodes[node].ReportGone(func(id uint64) bool { return id == dead })
	}
	qn.net.settle(t)
	for g := uint64(1); g <= groups; g++ {
		want := qn.leaderOf(g)
		if want == dead {
			want = 2
		}
		for _, node := range []uint64{2, 3} {
			var lead uint64
			on(t, qn.net.nodes[node], g, func(r *Replica) { lead = r.Status().Lead })
			if lead != want {
				t.Fatalf("group %d: node %d follows %d, want %d", g, node, lead, want)
			}
		}
	}
	for _, node := range []uint64{2, 3} {
		if q := qn.net.nodes[node].Quiesced(); q != groups-2 {
			t.Fatalf("node %d has %d groups quiesced, want %d (the ones not led by node %d)", node, q, groups-2, dead)
		}
	}
}
