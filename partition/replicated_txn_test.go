package partition

import (
	"errors"
	"reflect"
	"testing"

	"github.com/cairnlog/cairn/replica"
)

// TestReplicatedTxnStateOnEveryReplica: transactions written through the
// leader of a 3-replica group give every replica the same last stable
// offset and aborted index, also a follower restarted after DeleteRecords
// moved the log start past the first batch of a still open transaction (it
// learns of that transaction from the leader's snapshot or its replay),
// and the commit then releases the last stable offset everywhere.
func TestReplicatedTxnStateOnEveryReplica(t *testing.T) {
	g := newGroup(t, 11, []uint64{1, 2, 3}, func(c *Config) { c.Storage.SegmentBytes = 400 })
	l := g.leader()
	leader := g.parts[l]
	begin(t, leader, 1, 0)
	begin(t, leader, 2, 0)
	g.produceCommitted(l, txnBatch(t, 1, 0, 0, 2, "a")) // 0-1
	marker, err := leader.WriteMarker(1, 0, false, 0)   // 2
	if err != nil {
		t.Fatal(err)
	}
	if err := g.waitCommitted(l, marker); err != nil {
		t.Fatal(err)
	}
	g.produceCommitted(l, txnBatch(t, 2, 0, 0, 1, "b")) // 3, stays open
	last := g.produceCommitted(l, produce(t, 2, "plain"))
	g.converge(last.LastOffset + 1)
	wantAborted := []AbortedTxn{{ProducerID: 1, FirstOffset: 0, LastOffset: 2}}
	for id, p := range g.parts {
		if lso := p.LastStableOffset(); lso != 3 {
			t.Fatalf("node %d: LSO %d, want 3", id, lso)
		}
		if got := p.AbortedTransactions(0, 10); !reflect.DeepEqual(got, wantAborted) {
			t.Fatalf("node %d: aborted %+v, want %+v", id, got, wantAborted)
		}
	}

	follower := l%3 + 1
	g.crash(follower)
	at, err := leader.ProposeDeleteRecords(4)
	if err != nil {
		t.Fatal(err)
	}
	g.run("DeleteRecords applied on the leader", func() bool {
		done, err := leader.appliedDone(at)
		if err != nil {
			t.Fatal(err)
		}
		return done
	}, 10_000)
	more := g.produceCommitted(l, produce(t, 2, "after"))
	g.restart(follower)
	g.converge(more.LastOffset + 1)
	// The open transaction began below the new log start: it holds
	// read_committed consumers at the log start.
	if lso := g.parts[follower].LastStableOffset(); lso != 4 {
		t.Fatalf("restarted follower: LSO %d, want the log start 4 (producer 2's transaction is open)", lso)
	}
	commit, err := leader.WriteMarker(2, 0, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.waitCommitted(l, commit); err != nil {
		t.Fatal(err)
	}
	g.converge(commit.LastOffset + 1)
	for id, p := range g.parts {
		if lso, hwm := p.LastStableOffset(), p.HighWatermark(); lso != hwm {
			t.Fatalf("node %d after the commit: LSO %d, HWM %d", id, lso, hwm)
		}
	}
}

// TestLeadershipChangeDropsVerifications: a transaction's verification
// (KIP-890) does not outlive the leadership it was made under: another
// leader may write the producer's marker, which this replica applies
// without ending the verification, and a late batch of the ended
// transaction would then pass as verified when the leadership comes back.
// A verification in flight across the change is answered NOT_LEADER, so
// the client retries and is verified again.
func TestLeadershipChangeDropsVerifications(t *testing.T) {
	g := newGroup(t, 12, []uint64{1, 2, 3})
	leader := g.parts[g.leader()]
	begin(t, leader, 5, 0)
	if !leader.TxnOpen(5, 0) {
		t.Fatal("a confirmed verification does not open the transaction here")
	}
	guard, err := leader.VerifyStart(6)
	if err != nil {
		t.Fatal(err)
	}
	leader.mu.Lock()
	term := leader.repl.leadership.Term
	leader.mu.Unlock()
	leader.LeadershipChanged(replica.Leadership{Term: term + 1})
	if leader.TxnOpen(5, 0) {
		t.Fatal("a verification outlived the leadership it was made under")
	}
	if err := leader.BeginTransaction(6, 0, guard); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("confirming a verification a leadership change dropped: %v, want ErrNotLeader", err)
	}
}

// TestAppendInTermFencesAnotherTerm: an append for a leader epoch other
// than the one the partition leads is refused before anything is
// proposed, on a replica that leads again under a newer term as on one
// that never led that term; the current term's append commits.
func TestAppendInTermFencesAnotherTerm(t *testing.T) {
	g := newGroup(t, 13, []uint64{1, 2, 3})
	first := g.leader()
	old := g.parts[first].LeaderEpoch()
	res, err := g.parts[first].AppendInTerm(produce(t, 1, "in term"), old)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.waitCommitted(first, res); err != nil {
		t.Fatal(err)
	}
	g.crash(first)
	next := g.leader()
	end := g.parts[next].LogEndOffset()
	if _, err := g.parts[next].AppendInTerm(produce(t, 1, "stale"), old); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("append for term %d on the leader of term %d: %v, want ErrNotLeader", old, g.parts[next].LeaderEpoch(), err)
	}
	if got := g.parts[next].LogEndOffset(); got != end {
		t.Fatalf("a refused append moved the log end from %d to %d", end, got)
	}
	res, err = g.parts[next].AppendInTerm(produce(t, 1, "current"), g.parts[next].LeaderEpoch())
	if err != nil {
		t.Fatal(err)
	}
	if err := g.waitCommitted(next, res); err != nil {
		t.Fatal(err)
	}
}

// TestMarkerFromAnOlderCoordinatorIsFenced: once a coordinator of epoch 5
// wrote a producer's marker, a marker from one of epoch 4 (a coordinator
// replaced, still retrying the markers of a transaction the newer one
// ended) is refused on the leader, and the producer's next transaction
// stays open; the newer coordinator's marker ends it.
func TestMarkerFromAnOlderCoordinatorIsFenced(t *testing.T) {
	g := newGroup(t, 14, []uint64{1, 2, 3})
	l := g.leader()
	leader := g.parts[l]
	begin(t, leader, 7, 0)
	g.produceCommitted(l, txnBatch(t, 7, 0, 0, 1, "a"))
	g.produceMarkerFrom(l, 7, true, 5)
	begin(t, leader, 7, 0)
	second := g.produceCommitted(l, txnBatch(t, 7, 0, 1, 1, "a"))
	if _, err := leader.WriteMarker(7, 0, false, 4); !errors.Is(err, ErrTransactionCoordinatorFenced) {
		t.Fatalf("marker of coordinator epoch 4 after one of 5: %v, want ErrTransactionCoordinatorFenced", err)
	}
	if lso := leader.LastStableOffset(); lso != second.BaseOffset {
		t.Fatalf("LSO %d after the fenced marker, want the open transaction's %d", lso, second.BaseOffset)
	}
	end := g.produceMarkerFrom(l, 7, true, 5)
	g.converge(end.LastOffset + 1)
	for id, p := range g.parts {
		if lso, hwm := p.LastStableOffset(), p.HighWatermark(); lso != hwm {
			t.Fatalf("node %d: LSO %d, HWM %d after the newer coordinator's marker", id, lso, hwm)
		}
	}
}
