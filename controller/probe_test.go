package controller

import (
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/storage/vfs"
	"github.com/cairnlog/cairn/transport"
)

// A voter whose data directory was wiped starts again with the same peer
// list: its peers answer that the cluster exists, so it joins under
// incarnation 2 instead of bootstrapping as 1, the leader removes
// incarnation 1 from the group and promotes 2, and the group is back to
// three voters with the node in it.
func TestWipedVoterRejoinsAsANewIncarnation(t *testing.T) {
	for _, k := range logKinds {
		t.Run(k.name, func(t *testing.T) { testWipedVoterRejoins(t, newClusterOf(t, 3, 1000, k.durable)) })
	}
}

func testWipedVoterRejoins(t *testing.T, cl *cluster) {
	lead := cl.leader()
	propose(t, lead.c, createTopic(t, lead.c, "before-wipe", 3))
	victim := cl.follower().id
	cl.stop(victim)
	if err := cl.fs.RemoveAll(cl.dir(victim)); err != nil {
		t.Fatal(err)
	}
	cl.logs[victim] = replica.NewMemStorage()

	back := cl.start(victim)
	if got := back.c.Identity(); got.Incarnation != 2 || got.ReplicaID() != meta.ReplicaID(victim, 2) {
		t.Fatalf("rejoined as %+v", got)
	}
	if back.c.id != meta.ReplicaID(victim, 2) {
		t.Fatalf("replica id %x, want incarnation 2's", back.c.id)
	}
	var want []uint64
	for id := range cl.peers {
		want = append(want, meta.ReplicaID(id, 1))
	}
	want[slices.Index(want, meta.ReplicaID(victim, 1))] = meta.ReplicaID(victim, 2)
	slices.Sort(want)
	waitFor(t, "incarnation 1 replaced by 2 among three voters", func() bool {
		cs, err := cl.leader().c.Configuration()
		return err == nil && slices.Equal(slices.Sorted(slices.Values(cs.GetVoters())), want) && len(cs.GetLearners()) == 0
	})
	propose(t, back.c, allocate(victim))
	st := cl.converge(cl.leader().c.Applied())
	state, err := meta.UnmarshalState(st)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := findTopic(state, "before-wipe"); !ok {
		t.Fatal("the rejoined node's state lacks the topic made before the wipe")
	}
	stored, err := OpenIdentity(cl.fs, cl.dir(victim), victim, cl.clusterID)
	if err != nil || stored.Incarnation != 2 {
		t.Fatalf("node.json after the rejoin: %+v, %v", stored, err)
	}
}

// The verdict on the answers heard: any "exists" joins; a quorum of new
// or forming nodes, this one counted, bootstraps; else wait.
func TestProbeVerdict(t *testing.T) {
	for _, tc := range []struct {
		answers   map[int32]probeAnswer
		peers     int
		members   []int32
		bootstrap bool
	}{
		{map[int32]probeAnswer{}, 3, nil, false},
		{map[int32]probeAnswer{}, 1, nil, true},
		{map[int32]probeAnswer{2: answerNew}, 3, nil, true},
		{map[int32]probeAnswer{2: answerForming}, 3, nil, true},
		{map[int32]probeAnswer{2: answerNew}, 5, nil, false},
		{map[int32]probeAnswer{2: answerNew, 3: answerForming}, 5, nil, true},
		{map[int32]probeAnswer{2: answerNew, 3: answerExists}, 3, []int32{3}, false},
		{map[int32]probeAnswer{3: answerExists, 2: answerExists}, 3, []int32{2, 3}, false},
	} {
		members, bootstrap := probeVerdict(tc.answers, tc.peers)
		if !slices.Equal(members, tc.members) || bootstrap != tc.bootstrap {
			t.Errorf("%v of %d peers: members %v bootstrap %v, want %v %v", tc.answers, tc.peers, members, bootstrap, tc.members, tc.bootstrap)
		}
	}
}

// A wiped node that heard "exists" waits in requestJoin for a member to
// register it: it must answer other nodes' probes "exists" meanwhile, not
// "new", or a second wiped node could count it towards a quorum of new
// nodes and bootstrap the cluster again.
func TestRejoiningNodeAnswersExists(t *testing.T) {
	p := NewProbe(false)
	sent := make(frameRecorder, 4)
	p.SetSender(sent)
	p.handleProbeResult(2, append(binary.BigEndian.AppendUint64(nil, 0), byte(answerExists)))
	c := &Controller{e: testEnv(vfs.NewMem(), 1), identity: Identity{NodeID: 1}, cfg: Config{
		Probe: p, Transport: sent, Peers: map[int32]string{1: "h:1", 2: "h:2", 3: "h:3"},
		ProbeTimeout: waitMax, RetryDelay: time.Millisecond,
	}}
	members, err := c.probePeers()
	if err != nil || !slices.Equal(members, []int32{2}) {
		t.Fatalf("probe: members %v, %v", members, err)
	}
	p.handleProbe(3, binary.BigEndian.AppendUint64(nil, 9))
	f := sent.next(t)
	if f.to != 3 || f.typ != transport.FrameClusterProbeResult || len(f.payload) != probeResultBytes || probeAnswer(f.payload[8]) != answerExists {
		t.Fatalf("answered node %d with %v %x, want exists", f.to, f.typ, f.payload)
	}
}

// A member restarted without its meta-snapshot file has applied only the
// bootstrap snapshot when Open returns, but its log and term show the
// group went past it: it answers "exists" at once, not "forming" (which
// would let a wiped peer bootstrap again).
func TestRestartedMemberAnswersExistsAtOnce(t *testing.T) {
	cl := newCluster(t, 3, 1000)
	propose(t, cl.leader().c, allocate(1))
	cl.converge(cl.leader().c.Applied())
	f := cl.follower()
	file := f.c.snapshotFile()
	cl.stop(f.id)
	if err := cl.fs.Remove(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	n := cl.start(f.id)
	if a := n.c.cfg.Probe.answer.Load(); a != answerExists {
		t.Fatalf("restarted member answers %d, want exists (%d)", a, answerExists)
	}
}

// A wiped voter whose rejoin wrote node.json (its new incarnation) and
// its own meta log, still empty, and stopped before the leader's snapshot
// arrived starts again with the same peers: the empty log beside
// node.json is a join still waiting (never voted), not a lost log; it
// answers probes "exists" and then fills from the leader's snapshot.
func TestRejoinRestartedBeforeTheSnapshot(t *testing.T) {
	cl := newClusterOf(t, 3, 1000, true)
	lead := cl.leader()
	propose(t, lead.c, createTopic(t, lead.c, "before-wipe", 1))
	victim := cl.follower().id
	cl.stop(victim)
	if err := cl.fs.RemoveAll(cl.dir(victim)); err != nil {
		t.Fatal(err)
	}
	cl.logs[victim] = replica.NewMemStorage()
	var incarnation uint32
	waitFor(t, "the leader registers the wiped node again", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), waitMax)
		defer cancel()
		var err error
		incarnation, err = cl.leader().c.AddNode(ctx, victim, cl.peers[victim])
		return err == nil // refused while its old replica was heard from lately
	})
	ident := Identity{Version: nodeFileVersion, ClusterID: cl.clusterID, NodeID: victim, Incarnation: incarnation, Nonce: []byte("0123456789abcdef")}
	left, err := createEmptyMetaLog(testEnv(cl.fs, 9), filepath.Join(cl.dir(victim), MetaDirName), 1<<20, ident.ReplicaID())
	if err != nil {
		t.Fatal(err)
	}
	if err := left.Close(); err != nil {
		t.Fatal(err)
	}
	if err := writeIdentity(cl.fs, cl.dir(victim), ident); err != nil {
		t.Fatal(err)
	}
	back := cl.start(victim)
	if a := back.c.cfg.Probe.answer.Load(); a != answerExists {
		t.Fatalf("the rejoining node answers %d, want exists (%d)", a, answerExists)
	}
	waitFor(t, "the rejoined node has the state", func() bool {
		_, ok := findTopic(back.c.State(), "before-wipe")
		return ok
	})
	if back.c.id != meta.ReplicaID(victim, incarnation) || incarnation < 2 {
		t.Fatalf("replica id %x, want incarnation %d's", back.c.id, incarnation)
	}
}
