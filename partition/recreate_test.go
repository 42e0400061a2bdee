package partition

import (
	"fmt"
	"testing"
)

// recreateInPlace recreates node id's replica over its still-open
// partition from RestartPoint, as a cluster node does after a full disk or
// a refused snapshot, rather than reopen the partition.
func (g *group) recreateInPlace(id uint64) {
	g.t.Helper()
	g.c.Crash(id) // the stopped raft node goes; the partition stays open
	if g.inPlace == nil {
		g.inPlace = map[uint64]bool{}
	}
	g.inPlace[id] = true
	g.restart(id)
}

// TestReplicaRecreatedAfterAConfChange: a follower applies a configuration
// change and batches after it in one Apply (the Raft log records the
// applied index after a change only at the next Apply), then its replica
// is recreated in place before another Apply. The new raft node starts at
// what the partition applied, with the ConfState the change left, and the
// partition follows on; started below, Apply would be handed batches
// below its high watermark again and take the partition offline.
func TestReplicaRecreatedAfterAConfChange(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			g := newGroup(t, seed, []uint64{1, 2, 3})
			l := g.leader()
			for i := range 3 {
				g.produceCommitted(l, produce(t, 2, fmt.Sprintf("a%d", i)))
			}
			g.converge(6)
			f := l%3 + 1
			g.c.Net.Isolate(f, g.c.IDs())
			g.addLearner(l, 4)
			for i := range 4 {
				g.produceCommitted(l, produce(t, 2, fmt.Sprintf("b%d", i)))
			}
			g.c.Net.Heal()
			p := g.parts[f]
			g.run("the follower past the change, its applied index not recorded", func() bool {
				_, end, err := p.appliedEnd()
				return p.Err() != nil || err == nil && p.repl.confChanged && end < p.HighWatermark()
			}, 20_000)
			if err := p.Err(); err != nil {
				t.Fatal(err)
			}
			p.stateMu.Lock()
			applied := p.appliedIndex
			p.stateMu.Unlock()
			g.recreateInPlace(f)
			r := g.c.Node(f).Replica
			if r.Applied() != applied || len(r.ConfState().GetLearners()) != 1 {
				t.Fatalf("recreated at applied %d with %v; want %d and the learner", r.Applied(), r.ConfState(), applied)
			}
			more := g.produceCommitted(l, produce(t, 2, "c"))
			ok, err := g.c.RunUntil(func() bool { return p.Err() != nil || p.HighWatermark() == more.LastOffset+1 }, 10_000)
			if perr := p.Err(); perr != nil || err != nil || !ok {
				t.Fatalf("recreated follower: partition %v, run %v, caught up %v", perr, err, ok)
			}
		})
	}
}
