package controller

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/transport"
)

func TestNodeJoinCodec(t *testing.T) {
	j := nodeJoin{requestID: 7, nodeID: 3, nonce: []byte("0123456789abcdef"), raftAddr: "h:9"}
	got, err := decodeNodeJoin(encodeNodeJoin(j))
	if err != nil || got.requestID != 7 || got.nodeID != 3 || string(got.nonce) != string(j.nonce) || got.raftAddr != "h:9" {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	full := encodeNodeJoin(j)
	for _, bad := range [][]byte{nil, full[:12], full[:13+len(j.nonce)-1]} {
		if _, err := decodeNodeJoin(bad); err == nil {
			t.Errorf("%x decoded", bad)
		}
	}
}

// A node that knows only one member's address asks it to join over a join
// connection (the member's transport does not know the node): it learns
// the cluster id, its incarnation and the members' addresses from the
// answer, starts from them alone and becomes a learner that catches up.
// Asked again with the same nonce, as after a lost answer, the cluster
// gives the same incarnation; a join under a live member's id from
// another address is refused.
func TestJoinByAddressOnly(t *testing.T) {
	cl := newCluster(t, 3, 1000)
	member := cl.follower()
	addr := freeAddrs(t, 1)[0]
	nonce, err := NewNonce(testEnv(cl.fs, 4))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitMax)
	defer cancel()
	answer, err := JoinByAddress(ctx, cl.peers[member.id], 4, addr, nonce, nil)
	if err != nil {
		t.Fatal(err)
	}
	again, err := JoinByAddress(ctx, cl.peers[cl.leader().id], 4, addr, nonce, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := maps.Clone(cl.peers)
	want[4] = addr
	if answer.ClusterID != cl.clusterID || answer.Incarnation != 1 || again.Incarnation != 1 || !maps.Equal(answer.Peers, want) {
		t.Fatalf("answers %+v and %+v, want cluster %q, incarnation 1, peers %v", answer, again, cl.clusterID, want)
	}

	if _, err := JoinByAddress(ctx, cl.peers[member.id], member.id, addr, nonce, nil); !errors.Is(err, ErrRefused) {
		t.Fatalf("a join with a live member's id at another address: %v, want refused", err)
	}
	if b, _ := brokerOf(cl.leader().c, member.id); b.Incarnation != 1 {
		t.Fatalf("the member's broker after a refused join: %v", b)
	}

	cl.peers, cl.joined[4], cl.logs[4] = answer.Peers, answer.Incarnation, replica.NewMemStorage()
	joined := cl.start(4)
	cl.waitMembers(3, 1)
	propose(t, joined.c, allocate(4))
	cl.converge(cl.leader().c.Applied())
	if id := joined.c.Identity(); id.ClusterID != cl.clusterID || id.Incarnation != 1 {
		t.Fatalf("joined as %+v", id)
	}
}

func TestJoinAnswerCodec(t *testing.T) {
	a := JoinAnswer{ClusterID: "c", Incarnation: 3, Peers: map[int32]string{1: "h:1", 7: "h:7"}}
	body := encodeJoinAnswer(a)
	got, err := decodeJoinAnswer(3, body)
	if err != nil || got.ClusterID != "c" || got.Incarnation != 3 || !maps.Equal(got.Peers, a.Peers) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, bad := range [][]byte{nil, body[:1], body[:len(body)-1]} {
		if _, err := decodeJoinAnswer(3, bad); err == nil {
			t.Errorf("%x decoded", bad)
		}
	}
	if _, err := decodeJoinAnswer(0, body); err == nil {
		t.Error("incarnation 0 decoded")
	}
}

// Anyone who reaches a member's Raft port can open a join connection:
// one under each live voter's id, at the voter's own address, must not
// register a new incarnation, or the leader would remove the live old one
// and, repeated for every voter, commit a configuration without voters.
func TestJoinByAddressRefusesLiveVoter(t *testing.T) {
	cl := newCluster(t, 3, 1000)
	leader := cl.leader()
	before, err := leader.c.Configuration()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitMax)
	defer cancel()
	for _, id := range []int32{1, 2, 3} {
		nonce, err := NewNonce(testEnv(cl.fs, uint64(10+id)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := JoinByAddress(ctx, cl.peers[cl.follower().id], id, cl.peers[id], nonce, nil); !errors.Is(err, ErrRefused) {
			t.Fatalf("a join under live voter %d's id at its address was accepted", id)
		}
		if b, _ := brokerOf(cl.leader().c, id); b.GetIncarnation() != 1 {
			t.Fatalf("voter %d's broker after a refused join: %v", id, b)
		}
	}
	// One more membership round on the leader must keep every voter.
	if err := cl.leader().c.tendMembers(); err != nil {
		t.Fatal(err)
	}
	after, err := cl.leader().c.Configuration()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(slices.Sorted(slices.Values(after.GetVoters())), slices.Sorted(slices.Values(before.GetVoters()))) {
		t.Fatalf("voters %v after the joins, were %v", after.GetVoters(), before.GetVoters())
	}
}

// A node's request to join goes again under its id while unanswered (a
// wiped node's rejoin lost 15 s to one lost NodeJoin, and its start when
// two were lost: seeds 2664 and 2858), and the ids of a process's joins
// start at a random value, as the member remembers the joins it served by
// id.
func TestJoinIsSentAgainUntilAnswered(t *testing.T) {
	sent := make(frameRecorder, 4)
	c := openSingle(t, sent)
	c.cfg.Probe = NewProbe(false)
	type joined struct {
		a   JoinAnswer
		err error
	}
	got := make(chan joined, 1)
	go func() {
		a, err := c.requestJoin([]int32{2})
		got <- joined{a, err}
	}()
	first := sent.next(t)
	j, err := decodeNodeJoin(first.payload)
	if err != nil || first.to != 2 || first.typ != transport.FrameNodeJoin {
		t.Fatalf("first frame %+v: %v", first, err)
	}
	if j.requestID < 1<<20 {
		t.Fatalf("the join's request id %d: not drawn from a random start", j.requestID)
	}
	again := sent.next(t)
	j2, err := decodeNodeJoin(again.payload)
	if err != nil || again.to != 2 || again.typ != transport.FrameNodeJoin || j2.requestID != j.requestID || !bytes.Equal(j2.nonce, j.nonce) {
		t.Fatalf("sent again %+v (%+v, first %+v): %v", again, j2, j, err)
	}
	answer := JoinAnswer{ClusterID: c.identity.ClusterID, Incarnation: 2, Peers: map[int32]string{1: "n1:9093", 2: "n2:9093"}}
	c.cfg.Probe.Handlers()[transport.FrameNodeJoinResult](2, encodeResult(forwardResult{requestID: j.requestID, status: statusApplied, index: 2, body: encodeJoinAnswer(answer)}))
	select {
	case r := <-got:
		if r.err != nil || r.a.Incarnation != 2 {
			t.Fatalf("join answered %+v, %v", r.a, r.err)
		}
	case <-time.After(waitMax):
		t.Fatal("the join was not answered")
	}
}
