package partition

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/storage/vfs"
)

// TestReplicatedNegativeBaseOffset: a client batch whose base offset is
// negative (first byte 0xFF) is a data batch like any other: it is stamped
// with its offset and applied, never taken for a partition command.
func TestReplicatedNegativeBaseOffset(t *testing.T) {
	p := openOneVoter(t)
	recs := produce(t, 2, "neg")
	batch.SetBaseOffset(recs, -1)
	res := appendCommitted(t, p, recs)
	if res.BaseOffset != 0 || res.LastOffset != 1 {
		t.Fatalf("offsets %+v", res)
	}
	next := appendCommitted(t, p, produce(t, 1, "after"))
	if next.BaseOffset != 2 {
		t.Fatalf("next batch at %d", next.BaseOffset)
	}
	if err := p.Err(); err != nil {
		t.Fatalf("partition failed: %v", err)
	}
	if got := readValues(t, p, 0); fmt.Sprint(got) != "[neg-0 neg-1 after-0]" {
		t.Fatalf("read %v", got)
	}
}

// TestReplicatedUndoPopsOnlyTheDroppedBatch: undoing a dropped proposal
// that is not the last pending batch (PrepareProposal refused or never
// stamped it) leaves the pending batches and the next offset alone.
func TestReplicatedUndoPopsOnlyTheDroppedBatch(t *testing.T) {
	g := newGroup(t, 4, []uint64{1, 2, 3})
	l := g.leader()
	g.c.Net.Isolate(l, g.c.IDs())
	p := g.parts[l]
	res, err := p.Append(produce(t, 2, "pending"))
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	last := p.repl.pending[len(p.repl.pending)-1].at
	p.mu.Unlock()
	p.undoLastProposal(replica.ProposalPoint{Index: last.Index + 1, Term: last.Term})
	p.mu.Lock()
	n, next := len(p.repl.pending), p.repl.next
	p.mu.Unlock()
	if n != 1 || next != res.LastOffset+1 {
		t.Fatalf("after undoing another proposal: %d pending, next %d, want 1 and %d", n, next, res.LastOffset+1)
	}
	p.undoLastProposal(last)
	p.mu.Lock()
	n, next = len(p.repl.pending), p.repl.next
	p.mu.Unlock()
	if n != 0 || next != res.BaseOffset {
		t.Fatalf("after undoing the last proposal: %d pending, next %d, want 0 and %d", n, next, res.BaseOffset)
	}
}

// TestReplicatedAcksOneDurableIsPerTerm: what a leader's own syncs made
// durable in one term says nothing of a later term's batches at the same
// offsets. The leader syncs an uncommitted tail past offset 3, loses it to
// another leader, and leads again with the log ending at 3: its new batch
// at 3 is not durable before a sync.
func TestReplicatedAcksOneDurableIsPerTerm(t *testing.T) {
	g := newGroup(t, 3, []uint64{1, 2, 3})
	l := g.leader()
	base := g.produceCommitted(l, produce(t, 2, "base"))
	g.converge(base.LastOffset + 1)
	g.c.Net.Isolate(l, g.c.IDs())
	var last AppendResult
	for i := range 3 {
		res, err := g.parts[l].Append(produce(t, 1, fmt.Sprintf("lost%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		last = res
	}
	g.run("the isolated leader's own sync", func() bool {
		done, _ := g.parts[l].localDurableDone(last.LastOffset, last.Term)
		return done
	}, 1_000)
	var other uint64
	g.run("a leader on the majority side", func() bool {
		id, ok := g.c.Leader()
		other = id
		return ok && id != l
	}, 10_000)
	won := g.produceCommitted(other, produce(t, 1, "won"))
	g.c.Net.Heal()
	g.converge(won.LastOffset + 1)
	if err := g.c.Do(other, func(r *replica.Replica) error { r.TransferLeader(l); return nil }); err != nil {
		t.Fatal(err)
	}
	g.run("the old leader leads again", func() bool {
		id, ok := g.c.Leader()
		return ok && id == l && g.parts[l].serving() != 0
	}, 10_000)
	res, err := g.parts[l].Append(produce(t, 1, "fresh"))
	if err != nil {
		t.Fatal(err)
	}
	if res.LastOffset > last.LastOffset {
		t.Fatalf("new batch ends at %d, past the lost tail's end %d: the test checks nothing", res.LastOffset, last.LastOffset)
	}
	// No simulated step ran since: nothing of this batch was synced.
	if done, err := g.parts[l].localDurableDone(res.LastOffset, res.Term); done && err == nil {
		t.Fatalf("acks=1 for offset %d of term %d acknowledged before any sync", res.LastOffset, res.Term)
	}
}

// TestReplicatedStreamTurnEndsOnClose: an append waiting for its stream's
// turn behind a batch that cannot commit (an isolated leader) returns when
// the partition closes, with ErrClosed.
func TestReplicatedStreamTurnEndsOnClose(t *testing.T) {
	g := newGroup(t, 5, []uint64{1, 2, 3}, func(c *Config) { c.DeleteSegments, c.Streams = false, true })
	l := g.leader()
	g.c.Net.Isolate(l, g.c.IDs())
	p := g.parts[l]
	if _, err := p.Append(event("s", "no-stream", "e0")); err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{}, streamTurnsMax)
	p.waitingTurn = func() { waiting <- struct{}{} }
	errc := make(chan error, 1)
	go func() {
		_, err := p.Append(event("s", "0", "e1"))
		errc <- err
	}()
	select {
	case <-waiting:
	case err := <-errc:
		t.Fatalf("append behind a pending one to its stream did not wait: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("append waiting for its turn: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an append waiting for its stream's turn outlived the partition's close")
	}
}

// TestReplicatedWaiterFailsWhenTermEndsThoughBatchCommits: an acks=all
// waiter whose replica stops leading the term first gets ErrNotLeader at
// once, as Kafka answers NOT_LEADER_OR_FOLLOWER, even though the batch
// then commits under the next leader; the producer's retry there is
// answered as a duplicate with the batch's offsets.
func TestReplicatedWaiterFailsWhenTermEndsThoughBatchCommits(t *testing.T) {
	g := newGroup(t, 6, []uint64{1, 2, 3})
	l := g.leader()
	base := g.produceCommitted(l, produce(t, 1, "base"))
	g.converge(base.LastOffset + 1)
	var followers []uint64
	for _, id := range g.c.IDs() {
		if id != l {
			followers = append(followers, id)
			g.c.Net.Cut(id, l) // the batch reaches them, their acks never come back
		}
	}
	res, err := g.parts[l].Append(idempotent(t, 7, 0, 0, 2))
	if err != nil {
		t.Fatal(err)
	}
	g.run("the batch on every follower", func() bool {
		for _, id := range followers {
			if g.parts[id].LogEndOffset() <= res.LastOffset {
				return false
			}
		}
		return true
	}, 5_000)
	next := followers[0]
	if err := g.c.Do(next, func(r *replica.Replica) error { return r.Campaign() }); err != nil {
		t.Fatal(err)
	}
	g.run("the old leader steps down", func() bool { return g.parts[l].serving() != uint64(res.Term) }, 10_000)
	if hwm := g.parts[l].HighWatermark(); hwm > res.LastOffset {
		t.Fatalf("the old leader applied offset %d before stepping down: the test checks nothing", res.LastOffset)
	}
	if done, err := g.parts[l].committed(res.LastOffset, res.Term); !done || !errors.Is(err, ErrNotLeader) {
		t.Fatalf("waiter after the term ended: done %v, %v; want ErrNotLeader", done, err)
	}
	g.c.Net.Heal()
	g.converge(res.LastOffset + 1)
	if got := g.parts[l].epochAt(res.LastOffset); got != res.Term {
		t.Fatalf("offset %d committed with epoch %d, want the waiter's term %d", res.LastOffset, got, res.Term)
	}
	leader := g.leader()
	dup, err := g.parts[leader].Append(idempotent(t, 7, 0, 0, 2))
	if err != nil || !dup.Duplicate || dup.BaseOffset != res.BaseOffset || dup.LastOffset != res.LastOffset {
		t.Fatalf("retry on the new leader: %+v, %v; want a duplicate at [%d, %d]", dup, err, res.BaseOffset, res.LastOffset)
	}
}

// TestReplicatedRetryWaitsForItsOriginal: a retry answered as a duplicate
// carries the original's term, so it is acknowledged when the original
// commits, never before: a retry of a batch still pending on an isolated
// leader fails with ErrNotLeader once that leader's term ends (the batch
// never commits), and a retry of a committed batch is acknowledged at once.
func TestReplicatedRetryWaitsForItsOriginal(t *testing.T) {
	g := newGroup(t, 8, []uint64{1, 2, 3})
	l := g.leader()
	for _, id := range g.c.IDs() {
		if id != l {
			g.c.Net.Cut(id, l)
			g.c.Net.Cut(l, id)
		}
	}
	res, err := g.parts[l].Append(idempotent(t, 9, 0, 0, 2))
	if err != nil {
		t.Fatal(err)
	}
	retry, err := g.parts[l].Append(idempotent(t, 9, 0, 0, 2))
	if err != nil || !retry.Duplicate || retry.LastOffset != res.LastOffset || retry.Term != res.Term {
		t.Fatalf("retry of a pending batch: %+v, %v; want a duplicate of %+v", retry, err, res)
	}
	if done, err := g.parts[l].committed(retry.LastOffset, retry.Term); done {
		t.Fatalf("retry of a pending batch acknowledged (%v) before the batch committed", err)
	}
	g.run("the isolated leader steps down", func() bool { return g.parts[l].serving() != uint64(res.Term) }, 10_000)
	if done, err := g.parts[l].committed(retry.LastOffset, retry.Term); !done || !errors.Is(err, ErrNotLeader) {
		t.Fatalf("retry's wait after its term ended: done %v, %v; want ErrNotLeader", done, err)
	}

	g.c.Net.Heal()
	leader := g.leader()
	first := g.produceCommitted(leader, idempotent(t, 9, 0, 0, 2))
	again, err := g.parts[leader].Append(idempotent(t, 9, 0, 0, 2))
	if err != nil || !again.Duplicate || again.LastOffset != first.LastOffset {
		t.Fatalf("retry of a committed batch: %+v, %v; want a duplicate of %+v", again, err, first)
	}
	if done, err := g.parts[leader].committed(again.LastOffset, again.Term); !done || err != nil {
		t.Fatalf("retry of a committed batch: done %v, %v; want acknowledged", done, err)
	}
}

// TestReplicatedApplyChecksTheStoredBatch: a committed entry is applied
// only if the segments hold that very batch at its offset (same epoch,
// size and CRC), as a replay after a restart delivers entries below the
// log end again. The check compares with the batch the Raft log appended
// while its entry cache holds the entry, and reads the segments after a
// reopen (the cache starts empty); both refuse another batch.
func TestReplicatedApplyChecksTheStoredBatch(t *testing.T) {
	e := testEnv(vfs.NewMem())
	p := openOneVoterEnv(t, e, DefaultConfig())
	res := appendCommitted(t, p, produce(t, 2, "stored"))
	checkApplyRefusesAnother(t, p, res, true)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	checkApplyRefusesAnother(t, openOneVoterEnv(t, e, DefaultConfig()), res, false)
}

// checkApplyRefusesAnother applies, at the place of res's batch, that
// batch and then another of the same size and epoch (only the CRC
// differs): the first passes the stored-batch check, the second fails it.
// cached says whether the Raft log's entry cache must hold the entry.
func checkApplyRefusesAnother(t *testing.T, p *Partition, res AppendResult, cached bool) {
	t.Helper()
	index, err := p.raft.IndexAtOffset(res.BaseOffset)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.raft.AppendedData(index); ok != cached {
		t.Fatalf("entry %d in the entry cache: %v, want %v", index, ok, cached)
	}
	stored, err := p.log.Read(res.BaseOffset, 1, res.LastOffset+1)
	if err != nil {
		t.Fatal(err)
	}
	other := produce(t, 2, "others") // the same size: only the CRC differs
	batch.SetBaseOffset(other, res.BaseOffset)
	batch.SetPartitionLeaderEpoch(other, res.Term)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.applyBatch(index, stored, uint64(res.Term), res.BaseOffset); err != nil {
		t.Fatalf("the stored batch itself: %v", err)
	}
	if _, err := p.applyBatch(index, other, uint64(res.Term), res.BaseOffset); err == nil {
		t.Fatal("applied an entry whose batch is not the one stored at its offset")
	}
}

// TestReplicatedPrepareProposalRefusesCommandLikeData: should a data
// batch reach PrepareProposal still reading as a partition command, it is
// refused, not proposed unstamped.
func TestReplicatedPrepareProposalRefusesCommandLikeData(t *testing.T) {
	p := openOneVoter(t)
	data := produce(t, 1, "x")
	batch.SetBaseOffset(data, -1)
	err := p.repl.propose(func(r *replica.Replica) error {
		p.mu.Lock()
		p.repl.proposingData = true
		p.mu.Unlock()
		defer func() {
			p.mu.Lock()
			p.repl.proposingData = false
			p.mu.Unlock()
		}()
		_, err := r.Propose(replica.Proposal{Data: data})
		return err
	})
	if !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("data proposal reading as a command: %v, want ErrInvalidRecord", err)
	}
	res := appendCommitted(t, p, produce(t, 1, "after"))
	if res.BaseOffset != 0 || p.Err() != nil {
		t.Fatalf("next batch at %d, partition error %v", res.BaseOffset, p.Err())
	}
}
