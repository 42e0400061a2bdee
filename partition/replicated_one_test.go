package partition

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/storage/vfs"
)

// noPeers is the Sender of a one-voter group: it never has a message to send.
type noPeers struct{ t *testing.T }

func (n noPeers) Send(group uint64, msgs []*raftpb.Message) {
	n.t.Errorf("group %d of one voter sent %d messages", group, len(msgs))
}

// openOneVoter opens a replicated partition as the only voter of its group
// on a real Scheduler, and waits until it is the ready leader.
func openOneVoter(t *testing.T, edit ...func(*Config)) *Partition {
	t.Helper()
	cfg := DefaultConfig()
	for _, edit := range edit {
		edit(&cfg)
	}
	return openOneVoterEnv(t, testEnv(vfs.NewMem()), cfg)
}

func openOneVoterEnv(t *testing.T, e env.Env, cfg Config) *Partition {
	t.Helper()
	s, err := replica.NewScheduler(e, replica.SchedulerConfig{Workers: 1, SyncWorkers: 1, TickInterval: 10 * time.Millisecond}, noPeers{t})
	if err != nil {
		t.Fatal(err)
	}
	boot := raftlog.Bootstrap{GroupID: 1, ReplicaID: 1, Index: 1, Term: 1, ConfState: &raftpb.ConfState{Voters: []uint64{1}}}
	var r *replica.Replica // set below, before anything is applied
	rc := ReplicaConfig{Propose: SchedulerProposer(s, 1), ReadIndex: SchedulerReadIndex(s, 1), Bootstrap: boot,
		ConfState: func() *raftpb.ConfState { return r.ConfState() }}
	p, err := OpenReplica(e, partDir, "t", 0, cfg, rc)
	if err != nil {
		t.Fatal(err)
	}
	applied, err := p.RaftApplied()
	if err != nil {
		t.Fatal(err)
	}
	st := p.RaftStorage()
	r, err = replica.New(e, replica.Config{ID: 1, GroupID: 1, Applied: applied}, st, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddGroup(1, r, st, replica.GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	// The scheduler stops before the partition closes (a body may close it
	// itself): nothing then reads or applies into a closed Raft log.
	p.beforeClose = s.Close
	t.Cleanup(func() { _ = p.Close() })
	if err := s.Do(1, func(r *replica.Replica) { _ = r.Campaign() }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.waitFor(ctx, func() (bool, error) { return p.serving() != 0, nil }); err != nil {
		t.Fatalf("one voter never became the ready leader: %v", err)
	}
	return p
}

func (p *Partition) serving() uint64 {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	return p.servingTerm
}

func appendCommitted(t *testing.T, p *Partition, records []byte) AppendResult {
	t.Helper()
	res, err := p.Append(records)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitCommitted(ctx, res.LastOffset, res.Term); err != nil {
		t.Fatal(err)
	}
	return res
}

func TestReplicatedOneVoterOnScheduler(t *testing.T) {
	p := openOneVoter(t, func(c *Config) { c.LogAppendTime = true })
	r1 := appendCommitted(t, p, produce(t, 3, "a"))
	r2 := appendCommitted(t, p, idempotent(t, 42, 0, 0, 2))
	if r1.BaseOffset != 0 || r1.LastOffset != 2 || r2.BaseOffset != 3 || r2.LastOffset != 4 {
		t.Fatalf("offsets %+v %+v", r1, r2)
	}
	if r1.LogAppendTimeMs <= 0 {
		t.Fatalf("LogAppendTime result %d", r1.LogAppendTimeMs)
	}
	if got := readValues(t, p, 1); fmt.Sprint(got) != "[a-1 a-2 p42-0 p42-1]" {
		t.Fatalf("read %v", got)
	}
	dup, err := p.Append(idempotent(t, 42, 0, 0, 2))
	if err != nil || !dup.Duplicate || dup.BaseOffset != 3 || dup.LastOffset != 4 {
		t.Fatalf("retry: %+v %v", dup, err)
	}
	if _, err := p.Append(idempotent(t, 42, 0, 5, 1)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("sequence gap: %v", err)
	}
	if _, err := p.Append([]byte{1, 2, 3}); !errors.Is(err, ErrCorruptMessage) {
		t.Fatalf("garbage: %v", err)
	}
	// The second batch of a producer is accepted without waiting for the
	// first: it is checked against the first as pending, if not applied.
	a, err := p.Append(idempotent(t, 42, 0, 2, 1))
	if err != nil {
		t.Fatal(err)
	}
	b := appendCommitted(t, p, idempotent(t, 42, 0, 3, 1))
	if a.LastOffset+1 != b.BaseOffset {
		t.Fatalf("pipelined batches at %+v and %+v", a, b)
	}
	one, err := p.Append(produce(t, 1, "acks1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitLocalDurable(ctx, one.LastOffset, one.Term); err != nil {
		t.Fatalf("acks=1 on the leader's own sync: %v", err)
	}
	b = appendCommitted(t, p, produce(t, 1, "last"))
	start, err := p.DeleteRecordsBefore(context.Background(), 4)
	if err != nil || start != 4 || p.LogStartOffset() != 4 {
		t.Fatalf("DeleteRecordsBefore(4): %d, %v; log start %d", start, err, p.LogStartOffset())
	}
	if got := p.HighWatermark(); got != b.LastOffset+1 {
		t.Fatalf("high watermark %d, want %d", got, b.LastOffset+1)
	}
}

// TestReplicatedStreamAppendsTakeTurns: an append to a stream whose
// previous append is not applied yet waits for it, so its expected
// revision is checked against the index with that append in.
func TestReplicatedStreamAppendsTakeTurns(t *testing.T) {
	p := openOneVoter(t, func(c *Config) { c.DeleteSegments, c.Streams = false, true })
	var last AppendResult
	for i := range 20 {
		expected := "no-stream"
		if i > 0 {
			expected = fmt.Sprint(i - 1)
		}
		res, err := p.Append(event("s", expected, fmt.Sprintf("e%d", i)))
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if len(res.Streams) != 1 || res.Streams[0].First != int64(i) {
			t.Fatalf("append %d: %+v", i, res.Streams)
		}
		last = res
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitCommitted(ctx, last.LastOffset, last.Term); err != nil {
		t.Fatal(err)
	}
	if es := streamEntries(t, p, "s"); len(es) != 20 || es[19].Revision != 19 {
		t.Fatalf("index of s: %+v", es)
	}
	if _, err := p.Append(batch.Build([]batch.Record{{Value: []byte("a")}, {Value: []byte("b")}}, batch.None)); err != nil {
		t.Fatalf("keyless batch on a stream topic: %v", err)
	}
}

// TestReplicatedOneVoterRunsSingleWriterBodies runs tests written for the
// single-writer mode on a replicated partition, the only voter of its
// group: their opens (openEnv) give such a partition while it runs, and
// WaitDurable waits for the applied high watermark. Each open reopens the
// group's Raft log in the partition's directory. Left out: bodies about
// epochs per open; about the single writer's own sync, durability across a
// crash and write errors (in this mode durability is the group's log's,
// tested on simulated groups, and a failed write fails the replica); about
// a corrupt batch (the Raft log's open refuses the directory as damaged,
// where the single writer opens offline); and about the single writer's
// validation race.
func TestReplicatedOneVoterRunsSingleWriterBodies(t *testing.T) {
	bodies := []struct {
		name string
		body func(*testing.T)
	}{
		{"AppendRejectsBadInput", TestAppendRejectsBadInput},
		{"CompactedTopicNeedsKeys", TestCompactedTopicNeedsKeys},
		{"LogAppendTime", TestLogAppendTime},
		{"TimestampsLookups", TestTimestampsLookups},
		{"DeleteRecordsAndRetention", TestDeleteRecordsAndRetention},
		{"Compaction", TestCompaction},
		{"CompactionKeepsProducerState", TestCompactionKeepsProducerState},
		{"EnteringStreamBuildsIndexOffLock", TestEnteringStreamBuildsIndexOffLock},
		{"IndexBuildFollowsLogStart", TestIndexBuildFollowsLogStart},
		{"OffsetForTimestampPastEmptiedBatch", TestOffsetForTimestampPastEmptiedBatch},
		{"ProducerSnapshotWrittenWithoutWriterLock", TestProducerSnapshotWrittenWithoutWriterLock},
		{"ProducerSnapshotsOnlyMoveForward", TestProducerSnapshotsOnlyMoveForward},
		{"ReadIOErrorKeepsPartitionOnline", TestReadIOErrorKeepsPartitionOnline},
		{"SetConfigReportsLogError", TestSetConfigReportsLogError},
		{"TxnNeedsCoordinatorBegin", TestTxnNeedsCoordinatorBegin},
		{"TxnAbortedIndexAndReadCommitted", TestTxnAbortedIndexAndReadCommitted},
		{"TxnCompactionDropsAbortedKeepsMarkers", TestTxnCompactionDropsAbortedKeepsMarkers},
		{"TxnCompactionRemovesSpentAbortMarkers", TestTxnCompactionRemovesSpentAbortMarkers},
	}
	openAsOneVoter = true
	t.Cleanup(func() { openAsOneVoter = false })
	for _, b := range bodies {
		t.Run(b.name, b.body)
	}
}

// TestReplicatedOneVoterSyncFailureTakesItOffline: a failed sync of the
// group's log takes the partition offline with ErrStorageFailed, as the
// single writer's does: the waiter of the batch it covered gets the
// storage failure, and later appends are refused with it.
func TestReplicatedOneVoterSyncFailureTakesItOffline(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	p := openOneVoterEnv(t, testEnv(efs), DefaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := p.Append(produce(t, 1, "a"))
	if err == nil {
		err = p.WaitAppended(ctx, res, true)
	}
	if err != nil {
		t.Fatalf("append before the failure: %v", err)
	}
	efs.Inject(vfs.Rule{Op: vfs.OpSync, PathContains: partDir, Err: syscall.EIO})
	res, err = p.Append(produce(t, 1, "a"))
	if err == nil {
		err = p.WaitAppended(ctx, res, true)
	}
	if !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("append whose sync fails: %v, want ErrStorageFailed", err)
	}
	if _, err := p.Append(produce(t, 1, "a")); !errors.Is(err, ErrStorageFailed) || !errors.Is(p.Err(), ErrStorageFailed) {
		t.Fatalf("append after the failed sync: %v (partition: %v), want ErrStorageFailed", err, p.Err())
	}
}
