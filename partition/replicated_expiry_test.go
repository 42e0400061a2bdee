package partition

import (
	"testing"
	"time"
)

// TestLeaderForgetsExpiredProducersInItsTerm: the producer state a leader
// checks new batches against (the applied state with its proposals
// recorded) forgets the producers the applied state expires, so a leader
// that serves for long holds only the producers active within
// producer.id.expiration.ms, as its applied state does, rather than every
// producer its term has seen; a forgotten producer is accepted again at
// any sequence, as on a single node; and it never forgets a producer its
// applied state still holds.
func TestLeaderForgetsExpiredProducersInItsTerm(t *testing.T) {
	g := newGroup(t, 15, []uint64{1, 2, 3}, func(c *Config) {
		c.ProducerIDExpirationMs = 60_000
		c.CheckpointIntervalMs = 1_000
	})
	l := g.leader()
	leader := g.parts[l]
	for pid := int64(1); pid <= 40; pid++ {
		g.produceCommitted(l, idempotent(t, pid, 0, 0, 1))
	}
	g.clock.Advance(61 * time.Second)
	g.produceCommitted(l, idempotent(t, 100, 0, 0, 1)) // applied past the checkpoint interval: expiry runs
	g.produceCommitted(l, idempotent(t, 101, 0, 0, 1))
	leader.mu.Lock()
	checked, applied := leader.repl.overlay.ids(), leader.producers.ids()
	leader.mu.Unlock()
	if len(checked) != 2 || len(applied) != 2 {
		t.Fatalf("after expiry the leader checks against producers %v, applies %v; want 100 and 101", checked, applied)
	}
	if res := g.produceCommitted(l, idempotent(t, 7, 0, 9, 1)); res.Duplicate {
		t.Fatal("a forgotten producer's batch answered as a duplicate")
	}
	// What the applied state holds decides, not the overlay's own times
	// (taken at proposal, before the apply's): producer 101, its last
	// append in the overlay made as old as can be, stays at the next
	// checkpoint, and a retry of its batch is still a duplicate.
	leader.mu.Lock()
	leader.repl.overlay.producers[101].LastAppendMs = 0
	leader.mu.Unlock()
	g.clock.Advance(2 * time.Second)
	g.produceCommitted(l, idempotent(t, 102, 0, 0, 1))
	if res, err := leader.Append(idempotent(t, 101, 0, 0, 1)); err != nil || !res.Duplicate {
		t.Fatalf("retry of a batch the applied state holds: %+v %v, want a duplicate", res, err)
	}
}
