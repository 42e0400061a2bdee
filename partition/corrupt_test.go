package partition

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cairnlog/cairn/internal/testio"
	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/storage/vfs"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// corruptSecondBatch flips the magic byte of the second batch of a segment
// file, as a bit flip on disk would: a recovery that trusts the segment
// (it was closed cleanly) does not see it, the first read across it does.
func corruptSecondBatch(t *testing.T, fsys vfs.FS, name string) {
	t.Helper()
	damageSecondBatch(t, fsys, name, testio.FlipSecondBatchMagic)
}

// damageSecondBatch rewrites segment name with flip applied to its bytes.
func damageSecondBatch(t *testing.T, fsys vfs.FS, name string, flip func([]byte) error) {
	t.Helper()
	data, err := vfs.ReadFile(fsys, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := flip(data); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	f, err := fsys.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptBatchTakesPartitionOffline: stored bytes that are not a valid
// batch fail every later read the same way, so the first read that finds
// them takes the partition offline (reported through Err) and it refuses
// writes, instead of accepting records nobody can read back.
func TestCorruptBatchTakesPartitionOffline(t *testing.T) {
	fsys := vfs.NewMem()
	p := open(t, fsys)
	appendDurable(t, p, produce(t, 2, "first"))
	appendDurable(t, p, produce(t, 2, "second"))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	corruptSecondBatch(t, fsys, "/data/t-0/00000000000000000000.log")

	p = open(t, fsys)
	defer p.Close()
	if err := p.Err(); err != nil {
		t.Fatalf("offline before any read: %v", err)
	}
	if _, err := p.Read(0, 1<<20); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("read across the corrupt batch: %v, want ErrStorageFailed", err)
	}
	if err := p.Err(); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("partition after the failed read: Err %v, want ErrStorageFailed", err)
	}
	if _, err := p.Append(produce(t, 1, "after")); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("append to the corrupt partition: %v, want ErrStorageFailed", err)
	}
}

// TestReadIOErrorKeepsPartitionOnline: a failed read (an I/O error, which
// may pass) fails only that read.
func TestReadIOErrorKeepsPartitionOnline(t *testing.T) {
	fsys := vfs.NewErrorFS(vfs.NewMem())
	p := open(t, fsys)
	defer p.Close()
	appendDurable(t, p, produce(t, 2, "first"))
	remove := fsys.Inject(vfs.Rule{Op: vfs.OpRead, PathContains: ".log", Err: errors.New("EIO")})
	if _, err := p.Read(0, 1<<20); !errors.Is(err, ErrRead) {
		t.Fatalf("read with a failing disk: %v, want ErrRead", err)
	}
	remove()
	if err := p.Err(); err != nil {
		t.Fatalf("partition after a failed read: %v", err)
	}
	appendDurable(t, p, produce(t, 1, "after"))
}

// TestReplicaEntriesOverDamageAreCompacted: raft reading entries across a
// damaged batch (a leader catching up a replica) is told they are
// compacted, so it sends a snapshot rather than panic on the storage
// error, and the partition goes offline, telling its owner once.
func TestReplicaEntriesOverDamageAreCompacted(t *testing.T) {
	q, told := openDamagedReplica(t, testio.FlipSecondBatchMagic)
	st := q.RaftStorage()
	first, err := st.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := st.Entries(first, first+10, 1<<20); !errors.Is(err, raft.ErrCompacted) {
			t.Fatalf("entries across the damaged batch: %v, want raft.ErrCompacted", err)
		}
	}
	if err := q.Err(); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("partition after the damaged entries: %v, want ErrStorageFailed", err)
	}
	if len(*told) != 1 {
		t.Fatalf("the owner was told %d times (%v), want once", len(*told), *told)
	}
}

// TestReplicaReadChecksStoredBatches: a replica's read of a batch a disk
// damaged below the recovery point the open trusts takes the partition
// offline and tells its owner, who renews it, rather than serve the
// damage or stop short: records damaged (the header intact: only the CRC
// shows it), its base offset (which the CRC does not cover: the read
// would end there, or return the batch at a far offset), or its leader
// epoch (nor that: the read would serve a batch that differs from its
// other replicas' copies).
func TestReplicaReadChecksStoredBatches(t *testing.T) {
	for _, c := range []struct {
		name string
		flip func([]byte) error
	}{
		{"records", testio.FlipSecondBatchBody},
		{"base offset", testio.FlipSecondBatchBaseOffset},
		{"leader epoch", testio.FlipSecondBatchLeaderEpoch},
	} {
		t.Run(c.name, func(t *testing.T) {
			q, told := openDamagedReplica(t, c.flip)
			// As a consumer reads: from the start, on from each read's end.
			var err error
			for offset, reads := int64(0), 0; err == nil && reads < 300; reads++ {
				var res ReadResult
				if res, err = q.Read(offset, 1<<10); err == nil {
					offset = recordsEnd(res.Records)
				}
			}
			if !errors.Is(err, ErrStorageFailed) {
				t.Fatalf("reads across the damaged batch: %v, want ErrStorageFailed", err)
			}
			if err := q.Err(); !errors.Is(err, ErrStorageFailed) {
				t.Fatalf("partition after the damaged read: %v, want ErrStorageFailed", err)
			}
			if len(*told) != 1 {
				t.Fatalf("the owner was told %d times (%v), want once", len(*told), *told)
			}
		})
	}
}

// openDamagedReplica writes 200 committed batches through a one-voter
// replica, damages the second with flip while it is closed, and opens it
// again; it returns the replica and what its owner was told of damage.
func openDamagedReplica(t *testing.T, flip func([]byte) error) (*Partition, *[]error) {
	t.Helper()
	fsys := vfs.NewMem()
	e := testEnv(fsys)
	p := openOneVoterEnv(t, e, DefaultConfig())
	// Enough batches that the open, which reads batch headers from an
	// offset index entry before the log's end, does not reach the second.
	for i := range 200 {
		appendCommitted(t, p, produce(t, 1, fmt.Sprintf("record %d", i)))
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	damageSecondBatch(t, fsys, partDir+"/00000000000000000000.log", flip)

	told := &[]error{}
	boot := raftlog.Bootstrap{GroupID: 1, ReplicaID: 1, Index: 1, Term: 1, ConfState: &raftpb.ConfState{Voters: []uint64{1}}}
	s, err := replica.NewScheduler(e, replica.SchedulerConfig{Workers: 1, SyncWorkers: 1, TickInterval: 10 * time.Millisecond}, noPeers{t})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q, err := OpenReplica(e, partDir, "t", 0, DefaultConfig(), ReplicaConfig{Bootstrap: boot, Propose: SchedulerProposer(s, 1),
		ConfState: func() *raftpb.ConfState { return &raftpb.ConfState{Voters: []uint64{1}} },
		Damaged:   func(err error) { *told = append(*told, err) }})
	if err != nil {
		t.Fatalf("open with a damaged batch the open does not read: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q, told
}
