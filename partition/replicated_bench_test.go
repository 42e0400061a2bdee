package partition

// Benchmarks of the acks=all write path on a real filesystem: today's
// single-writer partition (Append + WaitDurable) against the one-voter
// replicated partition (Append + WaitCommitted) that a node without cluster
// flags runs, next to the disk's ceiling (1 MiB appends, each followed by
// fdatasync). Issue 12 allows the replicated path to be at most 5% slower;
// bench/results/2026-12-05-replicated-partition.md has the figures.
//
//	go test -run '^$' -bench 'PartitionAcksAll|FsyncReference' -benchtime 2s -count 3 ./partition/

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/storage/vfs"
)

const (
	// benchRecordValueBytes makes a record about 1 KiB once encoded (key,
	// varint lengths and deltas add about 20 bytes).
	benchRecordValueBytes = 1000
	benchWaitTimeout      = 30 * time.Second
)

// benchShape is one produce pattern: batch size and concurrent producers.
type benchShape struct {
	batchKiB  int
	producers int
}

var benchShapes = []benchShape{{16, 1}, {16, 8}, {1024, 1}, {1024, 8}}

func (s benchShape) String() string {
	return fmt.Sprintf("batch=%dKiB/producers=%d", s.batchKiB, s.producers)
}

// benchBatch builds a batch of about batchKiB KiB of 1 KiB records; a 1 MiB
// batch stays below MessageBytesMax's default (1048588).
func benchBatch(tb testing.TB, batchKiB int) []byte {
	tb.Helper()
	recs := make([]batch.Record, batchKiB)
	value := make([]byte, benchRecordValueBytes)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	for i := range recs {
		recs[i] = batch.Record{Offset: int64(i), TimestampMs: 1, Key: []byte(fmt.Sprintf("k%06d", i)), Value: value}
	}
	return batch.Build(recs, batch.None)
}

// acksAll is one acks=all produce: append a copy of the batch (Append
// rewrites it in place, and a replicated append keeps it until applied, as
// a broker keeps a request's buffer) and wait until it is acknowledged.
type acksAll func(ctx context.Context, records []byte) error

// runProducers spreads b.N produces of records over the shape's producers.
func runProducers(b *testing.B, shape benchShape, records []byte, produce acksAll) {
	b.Helper()
	b.SetBytes(int64(len(records)))
	b.ReportAllocs()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, shape.producers)
	b.ResetTimer()
	for range shape.producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				ctx, cancel := context.WithTimeout(context.Background(), benchWaitTimeout)
				err := produce(ctx, append([]byte(nil), records...))
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

func BenchmarkPartitionAcksAll(b *testing.B) {
	for _, shape := range benchShapes {
		records := benchBatch(b, shape.batchKiB)
		b.Run("single/"+shape.String(), func(b *testing.B) {
			p := openSingleBench(b)
			runProducers(b, shape, records, func(ctx context.Context, records []byte) error {
				res, err := p.Append(records)
				if err != nil {
					return err
				}
				return p.WaitDurable(ctx, res.LastOffset)
			})
		})
		b.Run("replicated/"+shape.String(), func(b *testing.B) {
			p := openOneVoterBench(b)
			runProducers(b, shape, records, func(ctx context.Context, records []byte) error {
				res, err := p.Append(records)
				if err != nil {
					return err
				}
				return p.WaitCommitted(ctx, res.LastOffset, res.Term)
			})
		})
	}
}

// BenchmarkFsyncReference is the disk's ceiling for large acks=all batches,
// as bench/fsyncref measures it: 1 MiB appends to a growing file, each
// followed by fdatasync (vfs's Sync on the OS filesystem).
func BenchmarkFsyncReference(b *testing.B) {
	f, err := vfs.Default().Create(filepath.Join(b.TempDir(), "ref"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

// openSingleBench opens today's single-writer partition on the OS
// filesystem in a temporary directory.
func openSingleBench(b *testing.B) *Partition {
	b.Helper()
	p, err := Open(testEnv(vfs.Default()), filepath.Join(b.TempDir(), "t-0"), "t", 0, DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	return p
}

// benchNoPeers is the Sender of a one-voter group.
type benchNoPeers struct{ b *testing.B }

func (n benchNoPeers) Send(group uint64, msgs []*raftpb.Message) {
	n.b.Errorf("group %d of one voter sent %d messages", group, len(msgs))
}

// openOneVoterBench opens a replicated partition, the only voter of its
// group, on the OS filesystem and a Scheduler with its default workers and
// tick, as openOneVoterEnv does on a memory filesystem, and waits until it
// is the ready leader.
func openOneVoterBench(b *testing.B) *Partition {
	b.Helper()
	e := testEnv(vfs.Default())
	s, err := replica.NewScheduler(e, replica.SchedulerConfig{}, benchNoPeers{b})
	if err != nil {
		b.Fatal(err)
	}
	boot := raftlog.Bootstrap{GroupID: 1, ReplicaID: 1, Index: 1, Term: 1, ConfState: &raftpb.ConfState{Voters: []uint64{1}}}
	var r *replica.Replica // set below, before anything is applied
	rc := ReplicaConfig{Propose: SchedulerProposer(s, 1), Bootstrap: boot, ConfState: func() *raftpb.ConfState { return r.ConfState() }}
	p, err := OpenReplica(e, filepath.Join(b.TempDir(), "t-0"), "t", 0, DefaultConfig(), rc)
	if err != nil {
		s.Close()
		b.Fatal(err)
	}
	p.beforeClose = s.Close
	b.Cleanup(func() { _ = p.Close() })
	applied, err := p.RaftApplied()
	if err != nil {
		b.Fatal(err)
	}
	st := p.RaftStorage()
	if r, err = replica.New(e, replica.Config{ID: 1, GroupID: 1, Applied: applied}, st, p); err != nil {
		b.Fatal(err)
	}
	if err := s.AddGroup(1, r, st, replica.GroupOptions{}); err != nil {
		b.Fatal(err)
	}
	if err := s.Do(1, func(r *replica.Replica) { _ = r.Campaign() }); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), benchWaitTimeout)
	defer cancel()
	if err := p.waitFor(ctx, func() (bool, error) { return p.serving() != 0, nil }); err != nil {
		b.Fatalf("one voter never became the ready leader: %v", err)
	}
	return p
}
