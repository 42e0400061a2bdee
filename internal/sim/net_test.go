package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

func msg(from, to, index uint64) *raftpb.Message {
	return &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: new(from), To: new(to), Index: new(index)}
}

// trace sends 200 messages under faults and returns the delivery order.
func trace(t *testing.T, seed uint64, f Faults) ([]string, NetStats) {
	t.Helper()
	n := NewNetwork(rand.New(rand.NewPCG(seed, 1)))
	if err := n.SetFaults(f); err != nil {
		t.Fatal(err)
	}
	for i := range uint64(200) {
		if err := n.Send(int64(i), msg(1+i%3, 1+(i+1)%3, i)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for now := int64(0); now < 1000; now++ {
		ms, err := n.Deliver(now)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			got = append(got, fmt.Sprintf("%d→%d#%d", m.GetFrom(), m.GetTo(), m.GetIndex()))
		}
	}
	return got, n.Stats()
}

// TestNetworkReplays: one seed gives one delivery order; faults drop,
// duplicate and reorder; another seed gives another order.
func TestNetworkReplays(t *testing.T) {
	f := Faults{DropPercent: 10, DuplicatePercent: 10, DelayMinMs: 1, DelayMaxMs: 30}
	a, sa := trace(t, 7, f)
	b, _ := trace(t, 7, f)
	c, _ := trace(t, 8, f)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed delivered in two orders")
	}
	if slices.Equal(a, c) {
		t.Fatal("two seeds delivered in the same order")
	}
	if sa.Dropped == 0 || sa.Duplicated == 0 || sa.Delivered != sa.Sent-sa.Dropped+sa.Duplicated {
		t.Fatalf("stats %+v do not add up", sa)
	}
	reordered := false
	var prev uint64
	for _, s := range a {
		var from, to, idx uint64
		if _, err := fmt.Sscanf(s, "%d→%d#%d", &from, &to, &idx); err != nil {
			t.Fatal(err)
		}
		reordered = reordered || idx < prev
		prev = idx
	}
	if !reordered {
		t.Fatal("random delays did not reorder anything")
	}
	reliable, sr := trace(t, 7, Faults{DelayMinMs: 1, DelayMaxMs: 1})
	if len(reliable) != 200 || sr.Dropped+sr.Duplicated != 0 {
		t.Fatalf("reliable network delivered %d of 200 (%+v)", len(reliable), sr)
	}
}

// TestNetworkPartitions: cut links drop at delivery time, both ways for
// Isolate and across sides for Split; Heal restores them.
func TestNetworkPartitions(t *testing.T) {
	all := []uint64{1, 2, 3, 4, 5}
	deliverAll := func(n *Network) map[[2]uint64]bool {
		for _, a := range all {
			for _, b := range all {
				if a != b {
					_ = n.Send(0, msg(a, b, 0))
				}
			}
		}
		got := map[[2]uint64]bool{}
		ms, _ := n.Deliver(10)
		for _, m := range ms {
			got[[2]uint64{m.GetFrom(), m.GetTo()}] = true
		}
		return got
	}
	n := NewNetwork(rand.New(rand.NewPCG(1, 1)))
	n.Isolate(3, all)
	got := deliverAll(n)
	if got[[2]uint64{3, 1}] || got[[2]uint64{1, 3}] || !got[[2]uint64{1, 2}] || len(got) != 12 {
		t.Fatalf("isolate 3 delivered %v", got)
	}
	n.Heal()
	n.Split([]uint64{1, 2}, []uint64{3, 4, 5})
	got = deliverAll(n)
	if got[[2]uint64{1, 4}] || got[[2]uint64{5, 2}] || !got[[2]uint64{3, 5}] || len(got) != 8 {
		t.Fatalf("split 12|345 delivered %v", got)
	}
	n.Heal()
	if got = deliverAll(n); len(got) != 20 {
		t.Fatalf("healed network delivered %d links, want 20", len(got))
	}
	if err := n.SetFaults(Faults{DropPercent: 101}); err == nil {
		t.Fatal("a drop rate of 101% was accepted")
	}
}
