package partition

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/storage/vfs"
)

// diskFullVoter is a one-voter replicated partition whose replica the test
// recreates when the partition asks (ReplicaConfig.DiskFull), as a
// cluster node does.
type diskFullVoter struct {
	p        *Partition
	s        *replica.Scheduler
	r        *replica.Replica
	restarts chan struct{}
}

func openDiskFullVoter(t *testing.T, fsys vfs.FS) *diskFullVoter {
	t.Helper()
	e := testEnv(fsys)
	s, err := replica.NewScheduler(e, replica.SchedulerConfig{Workers: 1, SyncWorkers: 1, TickInterval: 10 * time.Millisecond}, noPeers{t})
	if err != nil {
		t.Fatal(err)
	}
	v := &diskFullVoter{s: s, restarts: make(chan struct{}, 1)}
	boot := raftlog.Bootstrap{GroupID: 1, ReplicaID: 1, Index: 1, Term: 1, ConfState: &raftpb.ConfState{Voters: []uint64{1}}}
	rc := ReplicaConfig{Propose: SchedulerProposer(s, 1), Bootstrap: boot,
		ConfState: func() *raftpb.ConfState { return v.r.ConfState() },
		DiskFull: func() {
			select {
			case v.restarts <- struct{}{}:
			default:
			}
		}}
	if v.p, err = OpenReplica(e, partDir, "t", 0, DefaultConfig(), rc); err != nil {
		t.Fatal(err)
	}
	v.p.beforeClose = s.Close
	t.Cleanup(func() { _ = v.p.Close() })
	applied, err := v.p.RaftApplied()
	if err != nil {
		t.Fatal(err)
	}
	v.start(t, applied)
	return v
}

// start adds a new replica from the partition's Raft log to the
// scheduler and waits until it leads.
func (v *diskFullVoter) start(t *testing.T, applied uint64) {
	t.Helper()
	st := v.p.RaftStorage()
	r, err := replica.New(testEnv(nil), replica.Config{ID: 1, GroupID: 1, Applied: applied}, st, v.p)
	if err != nil {
		t.Fatal(err)
	}
	v.r = r
	if err := v.s.AddGroup(1, r, st, replica.GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := v.s.Do(1, func(r *replica.Replica) { _ = r.Campaign() }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := v.p.waitFor(ctx, func() (bool, error) { return v.p.serving() != 0, nil }); err != nil {
		t.Fatalf("the replica never became the ready leader: %v", err)
	}
}

// restart recreates the stopped replica, as ReplicaConfig.DiskFull asks.
func (v *diskFullVoter) restart(t *testing.T) {
	t.Helper()
	applied, err := v.p.RestartPoint()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.s.RemoveGroup(1); err != nil {
		t.Fatal(err)
	}
	v.start(t, applied)
}

// TestReplicatedDiskFullRecovers: on a one-voter replicated partition a
// full disk fails the produce with ErrDiskFull, not a lost leadership; the
// replica is recreated from its log; nothing acknowledged is lost, and
// once space returns the partition leads again and takes appends.
func TestReplicatedDiskFullRecovers(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	v := openDiskFullVoter(t, efs)
	p := v.p
	appendCommitted(t, p, produce(t, 2, "before"))

	remove := efs.Inject(vfs.Rule{Op: vfs.OpWrite, PathContains: ".log", Err: syscall.ENOSPC})
	if err := appendAndWait(p, produce(t, 1, "full")); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("produce on a full disk: %v", err)
	}
	select {
	case <-v.restarts:
	case <-time.After(10 * time.Second):
		t.Fatal("the partition never asked for its replica to be recreated")
	}
	if err := appendAndWait(p, produce(t, 1, "stopped")); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("produce while the replica is stopped: %v", err)
	}
	if got := readValues(t, p, 0); fmt.Sprint(got) != "[before-0 before-1]" {
		t.Fatalf("reads on a full disk: %v", got)
	}

	// Recreated while the disk is still full, the replica leads, and the
	// next write fails the same way.
	v.restart(t)
	if err := appendAndWait(p, produce(t, 1, "still")); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("produce on a still full disk: %v", err)
	}
	<-v.restarts

	remove()
	v.restart(t)
	res := appendCommitted(t, p, produce(t, 1, "after"))
	if res.BaseOffset != 2 {
		t.Fatalf("offset after space returned: %d", res.BaseOffset)
	}
	if got := readValues(t, p, 0); fmt.Sprint(got) != "[before-0 before-1 after-0]" {
		t.Fatalf("log after the disk was full: %v", got)
	}
}

// appendAndWait appends and waits for the commit (acks=all).
func appendAndWait(p *Partition, records []byte) error {
	res, err := p.Append(records)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.WaitCommitted(ctx, res.LastOffset, res.Term)
}
