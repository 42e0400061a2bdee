package partition

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"testing/cryptotest"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/internal/sim"
	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/storage/vfs"
	"github.com/cairnlog/cairn/streams"
)

// group is a simulated Raft group of replicated partitions, each node on
// its own crash-simulating filesystem, under the simulator's virtual clock.
// Everything runs on the test goroutine.
type group struct {
	t     *testing.T
	c     *sim.Cluster
	clock *env.ManualClock
	cfg   Config
	fs    map[uint64]*vfs.CrashFS
	parts map[uint64]*Partition
	// hwms are the high watermarks last seen per node (per incarnation):
	// run fails when one moves back.
	hwms map[uint64]int64
	// exposed holds every batch a high watermark exposed, by base offset.
	exposed map[int64][]byte
	voters  []uint64
	crashes int
	// tear drives what a crash keeps of unsynced writes.
	tear *rand.Rand
	// copiesSnapshots opens the replicas with ReplicaConfig.CopiesSnapshots,
	// and restarts, when not nil, with a Restart counting its calls by
	// node; damaged lists what each node's ReplicaConfig.Damaged was told.
	copiesSnapshots bool
	restarts        map[uint64]int
	damaged         map[uint64][]error
	// inPlace makes a node's next start recreate its replica over its
	// open partition (recreateInPlace).
	inPlace map[uint64]bool
}

const partDir = "/data/t-0"

// newGroup pins crypto/rand (raft's election jitter) to the seed, so a run
// replays exactly; t must not be parallel.
func newGroup(t *testing.T, seed uint64, voters []uint64, edit ...func(*Config)) *group {
	t.Helper()
	cryptotest.SetGlobalRandom(t, seed)
	g := &group{t: t, clock: env.NewManualClock(time.UnixMilli(1_700_000_000_000)), cfg: DefaultConfig(),
		fs: map[uint64]*vfs.CrashFS{}, parts: map[uint64]*Partition{}, hwms: map[uint64]int64{}, exposed: map[int64][]byte{}, voters: voters,
		tear: rand.New(rand.NewPCG(seed, 0x7ea5))}
	for _, e := range edit {
		e(&g.cfg)
	}
	for _, id := range voters {
		g.fs[id] = vfs.NewCrashFS()
	}
	c, err := sim.New(sim.Config{
		Seed: seed, Voters: voters, TickMs: 50, SyncDelayMaxMs: 5, Logger: quiet,
		NewNode: g.open,
	})
	if err != nil {
		t.Fatal(err)
	}
	g.c = c
	t.Cleanup(func() {
		for _, p := range g.parts {
			_ = p.Close()
		}
	})
	return g
}

// open is the simulator's node maker: node id's partition over what its
// filesystem holds, its Raft log the replica's storage (whose Syncs report
// to the partition, for acks=1).
func (g *group) open(id uint64) (sim.NodeParts, error) {
	if g.inPlace[id] {
		delete(g.inPlace, id)
		p := g.parts[id]
		applied, err := p.RestartPoint()
		if err != nil {
			return sim.NodeParts{}, err
		}
		return sim.NodeParts{Storage: p.RaftStorage(), SM: p, Applied: applied}, nil
	}
	e := env.Env{FS: g.fs[id], Clock: g.clock, Rand: env.NewSeededRand(id), Logger: quiet}
	rc := ReplicaConfig{
		Propose:   func(f func(*replica.Replica) error) error { return g.c.Do(id, f) },
		Bootstrap: raftlog.Bootstrap{GroupID: 1, ReplicaID: id, Index: 1, Term: 1, ConfState: &raftpb.ConfState{Voters: g.voters}},
		ConfState: func() *raftpb.ConfState { return g.c.Node(id).Replica.ConfState() },
		Damaged: func(err error) {
			if g.damaged == nil {
				g.damaged = map[uint64][]error{}
			}
			g.damaged[id] = append(g.damaged[id], err)
		},
		CopiesSnapshots: g.copiesSnapshots,
	}
	if g.restarts != nil {
		rc.Restart = func() { g.restarts[id]++ }
	}
	p, err := OpenReplica(e, partDir, "t", 0, g.cfg, rc)
	if err != nil {
		return sim.NodeParts{}, fmt.Errorf("open replica %d: %w", id, err)
	}
	applied, err := p.RaftApplied()
	if err != nil {
		return sim.NodeParts{}, err
	}
	g.parts[id] = p
	g.hwms[id] = p.HighWatermark()
	return sim.NodeParts{Storage: p.RaftStorage(), SM: p, Applied: applied}, nil
}

// run advances the simulation until cond holds, failing the test when it
// does not within maxMs or a high watermark moves back.
func (g *group) run(what string, cond func() bool, maxMs int64) {
	g.t.Helper()
	ok, err := g.c.RunUntil(func() bool { g.checkHWMs(); return cond() }, maxMs)
	if err != nil {
		g.t.Fatal(err)
	}
	if !ok {
		g.t.Fatalf("%s: not within %d ms", what, maxMs)
	}
}

func (g *group) checkHWMs() {
	for id, p := range g.parts {
		if !g.c.Node(id).Up {
			continue
		}
		hwm := p.HighWatermark()
		if hwm < g.hwms[id] {
			g.t.Fatalf("node %d: high watermark moved back from %d to %d", id, g.hwms[id], hwm)
		}
		if hwm > g.hwms[id] {
			g.checkExposed(id, max(g.hwms[id], p.LogStartOffset()), hwm)
		}
		g.hwms[id] = hwm
	}
}

// checkExposed checks the batches node id's high watermark just exposed,
// in [from, to), against those any replica exposed at the same offsets
// before: a high watermark never exposes a batch a truncation later
// replaces, on any replica.
func (g *group) checkExposed(id uint64, from, to int64) {
	data, err := g.parts[id].log.Read(from, 1<<30, to)
	if err != nil {
		g.t.Fatalf("node %d: read [%d, %d): %v", id, from, to, err)
	}
	for len(data) > 0 {
		h, whole, rest, err := batch.Next(data)
		if err != nil {
			g.t.Fatalf("node %d: batch after %d: %v", id, from, err)
		}
		data = rest
		if seen, ok := g.exposed[h.BaseOffset]; ok && !bytes.Equal(seen, whole) {
			g.t.Fatalf("node %d exposes another batch at offset %d than one exposed before", id, h.BaseOffset)
		}
		g.exposed[h.BaseOffset] = bytes.Clone(whole)
	}
}

func (g *group) leader() uint64 {
	g.t.Helper()
	var id uint64
	g.run("a ready leader", func() bool {
		var ok bool
		id, ok = g.c.Leader()
		return ok
	}, 10_000)
	return id
}

// waitCommitted runs until the append's acks=all outcome is known.
func (g *group) waitCommitted(node uint64, res AppendResult) error {
	g.t.Helper()
	var err error
	g.run(fmt.Sprintf("outcome of offset %d on %d", res.LastOffset, node), func() bool {
		var done bool
		done, err = g.parts[node].committed(res.LastOffset, res.Term)
		return done
	}, 10_000)
	return err
}

func (g *group) produceCommitted(node uint64, records []byte) AppendResult {
	g.t.Helper()
	res, err := g.parts[node].Append(records)
	if err != nil {
		g.t.Fatalf("append on %d: %v", node, err)
	}
	if !res.Duplicate {
		if err := g.waitCommitted(node, res); err != nil {
			g.t.Fatalf("offset %d on %d: %v", res.LastOffset, node, err)
		}
	}
	return res
}

// converge runs until every live replica has the high watermark want.
func (g *group) converge(want int64) {
	g.t.Helper()
	g.run(fmt.Sprintf("every replica at high watermark %d", want), func() bool {
		for id, p := range g.parts {
			if g.c.Node(id).Up && p.HighWatermark() != want {
				return false
			}
		}
		return true
	}, 20_000)
}

// committedBytes is what a replica serves: its batches from the log start
// to its high watermark.
func committedBytes(t *testing.T, p *Partition) []byte {
	t.Helper()
	data, err := p.log.Read(p.LogStartOffset(), 1<<30, p.HighWatermark())
	if err != nil && p.LogStartOffset() < p.HighWatermark() {
		t.Fatal(err)
	}
	return data
}

// sameEverywhere checks that the live replicas hold byte-identical batch
// sequences, log starts and high watermarks.
func (g *group) sameEverywhere() []byte {
	g.t.Helper()
	var want []byte
	var from uint64
	for _, id := range g.c.IDs() {
		if !g.c.Node(id).Up {
			continue
		}
		p := g.parts[id]
		got := committedBytes(g.t, p)
		if from == 0 {
			want, from = got, id
			continue
		}
		if !bytes.Equal(got, want) {
			g.t.Fatalf("node %d holds %d bytes of batches, node %d %d, and they differ", id, len(got), from, len(want))
		}
		if p.LogStartOffset() != g.parts[from].LogStartOffset() || p.HighWatermark() != g.parts[from].HighWatermark() {
			g.t.Fatalf("node %d: start %d hwm %d, node %d: start %d hwm %d", id, p.LogStartOffset(), p.HighWatermark(),
				from, g.parts[from].LogStartOffset(), g.parts[from].HighWatermark())
		}
	}
	return want
}

// crash takes node id down with what its filesystem had synced, and a
// random part of each file's unsynced appends, perhaps torn (a power cut);
// restart brings it back over that.
func (g *group) crash(id uint64) {
	g.crashes++
	g.c.Crash(id)
	old := g.parts[id]
	g.fs[id] = g.fs[id].Crash(vfs.CrashOptions{Rand: g.tear, TearUnsynced: true})
	_ = old.Close() // writes to the filesystem the crash left behind
}

func (g *group) restart(id uint64) {
	g.t.Helper()
	if err := g.c.Restart(id); err != nil {
		g.t.Fatal(err)
	}
}

// epochsOf lists each stored batch's leader epoch.
func epochsOf(t *testing.T, data []byte) []int32 {
	t.Helper()
	var out []int32
	for len(data) > 0 {
		h, _, rest, err := batch.Next(data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h.PartitionLeaderEpoch)
		data = rest
	}
	return out
}

func TestReplicatedProduceReachesEveryReplica(t *testing.T) {
	g := newGroup(t, 1, []uint64{1, 2, 3})
	l := g.leader()
	term := int32(g.c.Node(l).Replica.Leadership().Term)
	var last AppendResult
	for i := range 10 {
		last = g.produceCommitted(l, produce(t, 3, fmt.Sprintf("v%d", i)))
		if last.Term != term || last.BaseOffset != int64(3*i) {
			t.Fatalf("append %d: %+v, want base %d in term %d", i, last, 3*i, term)
		}
	}
	g.converge(last.LastOffset + 1)
	data := g.sameEverywhere()
	for i, e := range epochsOf(t, data) {
		if e != term {
			t.Fatalf("batch %d stamped with epoch %d, want the term %d", i, e, term)
		}
	}
	if got := g.parts[l].LeaderEpoch(); got != term {
		t.Fatalf("leader epoch %d, want the term %d", got, term)
	}
	follower := l%3 + 1
	if _, err := g.parts[follower].Append(produce(t, 1, "x")); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("append on follower %d: %v, want ErrNotLeader", follower, err)
	}
}

func TestReplicatedRetryAfterFailoverIsDeduplicated(t *testing.T) {
	g := newGroup(t, 2, []uint64{1, 2, 3})
	l := g.leader()
	g.produceCommitted(l, idempotent(t, 7, 0, 0, 2))
	first := g.produceCommitted(l, idempotent(t, 7, 0, 2, 3))
	g.converge(first.LastOffset + 1)
	// The leader crashes after the commit, before its reply reached the
	// producer, which retries on the next leader.
	g.crash(l)
	next := g.leader()
	if next == l {
		t.Fatalf("leader %d crashed and is still the leader", l)
	}
	retry, err := g.parts[next].Append(idempotent(t, 7, 0, 2, 3))
	if err != nil {
		t.Fatal(err)
	}
	if !retry.Duplicate || retry.BaseOffset != first.BaseOffset || retry.LastOffset != first.LastOffset {
		t.Fatalf("retry on the new leader: %+v, want a duplicate of %+v", retry, first)
	}
	if _, err := g.parts[next].Append(idempotent(t, 7, 0, 9, 1)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("sequence gap on the new leader: %v, want ErrOutOfOrderSequence", err)
	}
	after := g.produceCommitted(next, idempotent(t, 7, 0, 5, 1))
	if after.BaseOffset != first.LastOffset+1 {
		t.Fatalf("next batch at %d, want %d", after.BaseOffset, first.LastOffset+1)
	}
	g.restart(l)
	g.converge(after.LastOffset + 1)
	g.sameEverywhere()
}

func TestReplicatedUncommittedTailIsTruncatedAndItsWaitersFail(t *testing.T) {
	g := newGroup(t, 3, []uint64{1, 2, 3})
	l := g.leader()
	base := g.produceCommitted(l, produce(t, 2, "base"))
	g.converge(base.LastOffset + 1)

	g.c.Net.Isolate(l, g.c.IDs())
	var lost []AppendResult
	for i := range 3 {
		res, err := g.parts[l].Append(produce(t, 1, fmt.Sprintf("lost%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		lost = append(lost, res)
	}
	for _, res := range lost {
		if err := g.waitCommitted(l, res); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("acks=all waiter of an isolated leader's offset %d: %v, want ErrNotLeader", res.LastOffset, err)
		}
	}
	var other uint64
	g.run("a leader on the majority side", func() bool {
		id, ok := g.c.Leader()
		other = id
		return ok && id != l
	}, 10_000)
	won := g.produceCommitted(other, produce(t, 4, "won"))
	if won.BaseOffset != lost[0].BaseOffset {
		t.Fatalf("new leader appended at %d, want the lost tail's offset %d reused", won.BaseOffset, lost[0].BaseOffset)
	}
	g.c.Net.Heal()
	g.converge(won.LastOffset + 1)
	data := g.sameEverywhere()
	if bytes.Contains(data, []byte("lost")) {
		t.Fatal("a batch of the old leader's uncommitted tail survived")
	}
	for _, res := range lost {
		if done, err := g.parts[l].committed(res.LastOffset, res.Term); !done || !errors.Is(err, ErrNotLeader) {
			t.Fatalf("after the rejoin, offset %d of term %d: done %v, %v; want ErrNotLeader", res.LastOffset, res.Term, done, err)
		}
	}
}

func TestReplicatedAcksOneCanBeLostOnFailover(t *testing.T) {
	g := newGroup(t, 4, []uint64{1, 2, 3})
	l := g.leader()
	g.c.Net.Isolate(l, g.c.IDs())
	res, err := g.parts[l].Append(produce(t, 1, "acks1"))
	if err != nil {
		t.Fatal(err)
	}
	g.run("the leader's own sync", func() bool {
		done, err := g.parts[l].localDurableDone(res.LastOffset, res.Term)
		if done && err != nil {
			t.Fatalf("acks=1 on the leader: %v", err)
		}
		return done
	}, 1_000)
	// Acknowledged on the leader's sync alone: the majority never saw it,
	// elects another leader and overwrites the offset. Expected, as in Kafka.
	var other uint64
	g.run("a leader on the majority side", func() bool {
		id, ok := g.c.Leader()
		other = id
		return ok && id != l
	}, 10_000)
	won := g.produceCommitted(other, produce(t, 1, "other"))
	g.c.Net.Heal()
	g.converge(won.LastOffset + 1)
	if data := g.sameEverywhere(); bytes.Contains(data, []byte("acks1")) {
		t.Fatal("the acks=1 batch survived; this scenario expects it lost")
	}
	if done, err := g.parts[l].localDurableDone(res.LastOffset, res.Term); !done || !errors.Is(err, ErrNotLeader) {
		t.Fatalf("acks=1 check after the failover: done %v, %v; want ErrNotLeader", done, err)
	}
}

func TestReplicatedRestartAndDeleteRecords(t *testing.T) {
	g := newGroup(t, 5, []uint64{1, 2, 3}, func(c *Config) { c.Storage.SegmentBytes = 400 })
	l := g.leader()
	var last AppendResult
	for i := range 12 {
		last = g.produceCommitted(l, produce(t, 2, fmt.Sprintf("r%d", i)))
	}
	g.converge(last.LastOffset + 1)
	follower := l%3 + 1
	g.crash(follower)
	at, err := g.parts[l].ProposeDeleteRecords(9)
	if err != nil {
		t.Fatal(err)
	}
	g.run("DeleteRecords applied on the leader", func() bool {
		done, err := g.parts[l].appliedDone(at)
		if err != nil {
			t.Fatal(err)
		}
		return done
	}, 10_000)
	more := g.produceCommitted(l, produce(t, 2, "after"))
	g.restart(follower)
	if got := g.parts[follower].HighWatermark(); got > last.LastOffset+1 {
		t.Fatalf("restarted follower opens at high watermark %d past what was applied (%d)", got, last.LastOffset+1)
	}
	g.converge(more.LastOffset + 1)
	g.sameEverywhere()
	for id, p := range g.parts {
		if p.LogStartOffset() != 9 {
			t.Fatalf("node %d: log start %d after DeleteRecords(9)", id, p.LogStartOffset())
		}
	}
}

// event is a one-record batch appending to stream with an expected
// revision and an event id, as the event store sends it.
func event(stream, expected, id string) []byte {
	return batch.Build([]batch.Record{{Key: []byte(stream), Value: []byte("{}"), Headers: []batch.RecordHeader{
		{Key: streams.HeaderExpectedRevision, Value: []byte(expected)},
		{Key: streams.HeaderID, Value: []byte(id)},
	}}}, batch.None)
}

// streamEntries lists a replica's index entries of stream.
func streamEntries(t *testing.T, p *Partition, stream string) []streams.Entry {
	t.Helper()
	x, err := p.StreamIndex()
	if err != nil {
		t.Fatal(err)
	}
	es, err := x.Entries(stream, 0, false, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestReplicatedStreamRevisionsAcrossFailover(t *testing.T) {
	g := newGroup(t, 6, []uint64{1, 2, 3}, func(c *Config) { c.DeleteSegments, c.Streams = false, true })
	l := g.leader()
	for i := range 3 {
		res := g.produceCommitted(l, event("order-1", "any", fmt.Sprintf("a%d", i)))
		if len(res.Streams) != 1 || res.Streams[0].First != int64(i) {
			t.Fatalf("append %d: %+v", i, res.Streams)
		}
	}
	last := g.produceCommitted(l, event("order-2", "no-stream", "b0"))
	g.converge(last.LastOffset + 1)
	g.crash(l)
	next := g.leader()

	// On the new leader: the next expected revision is accepted, a stale
	// one refused, and a retry of an append the old leader committed is
	// answered with its revision, not appended again.
	res := g.produceCommitted(next, event("order-1", "2", "a3"))
	if len(res.Streams) != 1 || res.Streams[0].First != 3 {
		t.Fatalf("append at expected revision 2 on the new leader: %+v", res.Streams)
	}
	if _, err := g.parts[next].Append(event("order-1", "2", "a4")); !errors.Is(err, streams.ErrWrongExpectedRevision) {
		t.Fatalf("stale expected revision on the new leader: %v", err)
	}
	retry, err := g.parts[next].Append(event("order-1", "0", "a1"))
	if err != nil || !retry.Duplicate || len(retry.Streams) != 1 || retry.Streams[0].First != 1 {
		t.Fatalf("retry of event a1 on the new leader: %+v %v", retry, err)
	}
	// The retry is acknowledged as its original was: committed in the old
	// leader's term.
	if done, err := g.parts[next].committed(retry.LastOffset, retry.Term); !done || err != nil {
		t.Fatalf("wait for the retry of event a1 (term %d): done %v, %v; want acknowledged", retry.Term, done, err)
	}
	g.restart(l)
	g.converge(res.LastOffset + 1)
	g.sameEverywhere()
	want := streamEntries(t, g.parts[next], "order-1")
	if len(want) != 4 {
		t.Fatalf("leader's index of order-1: %+v", want)
	}
	for _, id := range g.c.IDs() {
		got := streamEntries(t, g.parts[id], "order-1")
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("node %d index of order-1 %+v, leader's %+v", id, got, want)
		}
		for rev, e := range got {
			if e.Revision != int64(rev) {
				t.Fatalf("node %d: revision %d at position %d", id, e.Revision, rev)
			}
		}
	}
}

// TestReplicatedStreamTurns: while an append to a stream is pending, the
// next one to that stream is held back (the index does not have the first
// yet), one to another stream is not; once the first is applied, the
// second is checked against it.
func TestReplicatedStreamTurns(t *testing.T) {
	g := newGroup(t, 7, []uint64{1, 2, 3}, func(c *Config) { c.DeleteSegments, c.Streams = false, true })
	l := g.leader()
	p := g.parts[l]
	first, err := p.Append(event("s", "no-stream", "e0"))
	if err != nil {
		t.Fatal(err)
	}
	second := event("s", "0", "e1")
	headers, recs, err := validateBatches(second, p.cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.proposeBatches(second, headers, recs, p.cfg, anyTerm); !errors.Is(err, errStreamPending) {
		t.Fatalf("second append to s while the first is pending: %v, want errStreamPending", err)
	}
	if _, err := p.Append(event("other", "no-stream", "o0")); err != nil {
		t.Fatalf("append to another stream: %v", err)
	}
	if err := g.waitCommitted(l, first); err != nil {
		t.Fatal(err)
	}
	res, err := p.Append(second)
	if err != nil || len(res.Streams) != 1 || res.Streams[0].First != 1 {
		t.Fatalf("second append to s once the first applied: %+v %v", res, err)
	}
}

// TestReplicatedDroppedProposalGivesItsOffsetsBack: raft drops proposals
// while a leader transfer is under way, after PrepareProposal stamped
// them; the offsets and the producer's sequence go back, so the retry
// after the transfer gave up lands right after the last batch, as new.
func TestReplicatedDroppedProposalGivesItsOffsetsBack(t *testing.T) {
	g := newGroup(t, 8, []uint64{1, 2, 3})
	l := g.leader()
	first := g.produceCommitted(l, idempotent(t, 3, 0, 0, 2))
	other := l%3 + 1
	g.c.Net.Isolate(other, g.c.IDs())
	if err := g.c.Do(l, func(r *replica.Replica) error { r.TransferLeader(other); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := g.parts[l].Append(idempotent(t, 3, 0, 2, 2)); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("append during a leader transfer: %v, want ErrNotLeader (dropped)", err)
	}
	g.run("the transfer to an isolated replica given up", func() bool {
		return g.c.Node(l).Replica.Status().LeadTransferee == 0
	}, 10_000)
	if got, _ := g.c.Leader(); got != l {
		t.Fatalf("leader %d after the transfer gave up, want %d", got, l)
	}
	res := g.produceCommitted(l, idempotent(t, 3, 0, 2, 2))
	if res.Duplicate || res.BaseOffset != first.LastOffset+1 {
		t.Fatalf("retry after the dropped proposal: %+v, want new at offset %d", res, first.LastOffset+1)
	}
}

// TestReplicatedConfigChangeBeforeProposal: a batch validated under one
// config is validated again when the topic's config changed before it is
// stamped (here: turned compacted, which needs keys).
func TestReplicatedConfigChangeBeforeProposal(t *testing.T) {
	g := newGroup(t, 9, []uint64{1, 2, 3})
	l := g.leader()
	p := g.parts[l]
	stale := p.config()
	keyless := batch.Build([]batch.Record{{Value: []byte("v")}}, batch.None)
	headers, recs, err := validateBatches(keyless, stale, false)
	if err != nil {
		t.Fatal(err)
	}
	compacted := stale
	compacted.Compact, compacted.DeleteSegments = true, false
	if err := p.SetConfig(compacted); err != nil {
		t.Fatal(err)
	}
	if _, err := p.proposeBatches(keyless, headers, recs, stale, anyTerm); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("keyless batch validated before the topic turned compacted: %v, want ErrInvalidRecord", err)
	}
	if end := p.repl.next; end != 0 {
		t.Fatalf("next proposal offset %d after a refused batch", end)
	}
}

// TestReplicatedWholeGroupRestarts: every replica crashes and restarts from
// what its files and its raft storage kept; the group delivers its
// committed entries again, the replicas pass over what their segments
// hold, and producer state (replayed at open, then applied) still answers
// a retry of the last batch.
func TestReplicatedWholeGroupRestarts(t *testing.T) {
	g := newGroup(t, 10, []uint64{1, 2, 3}, func(c *Config) { c.Storage.SegmentBytes = 500 })
	l := g.leader()
	var last AppendResult
	for i := range 8 {
		last = g.produceCommitted(l, idempotent(t, 5, 0, int32(2*i), 2))
	}
	g.converge(last.LastOffset + 1)
	before := g.sameEverywhere()
	for _, id := range g.c.IDs() {
		g.crash(id)
	}
	for _, id := range g.c.IDs() {
		g.restart(id)
	}
	l = g.leader()
	retry, err := g.parts[l].Append(idempotent(t, 5, 0, 14, 2))
	if err != nil || !retry.Duplicate || retry.BaseOffset != last.BaseOffset {
		t.Fatalf("retry of the last batch after the group restarted: %+v %v, want a duplicate of %+v", retry, err, last)
	}
	next := g.produceCommitted(l, idempotent(t, 5, 0, 16, 1))
	if next.BaseOffset != last.LastOffset+1 {
		t.Fatalf("next batch at %d, want %d", next.BaseOffset, last.LastOffset+1)
	}
	g.converge(next.LastOffset + 1)
	if after := g.sameEverywhere(); !bytes.HasPrefix(after, before) {
		t.Fatal("the batches committed before the restart changed")
	}
}
