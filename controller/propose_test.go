package controller

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/storage/vfs"
	"github.com/cairnlog/cairn/transport"
	"go.etcd.io/raft/v3/raftpb"
)

// frame is one frame a frameRecorder was asked to send.
type frame struct {
	to      uint64
	typ     transport.FrameType
	payload []byte
}

// frameRecorder is a FrameSender that keeps what it sends.
type frameRecorder chan frame

func (r frameRecorder) SendFrame(to uint64, typ transport.FrameType, payload []byte) error {
	r <- frame{to: to, typ: typ, payload: bytes.Clone(payload)}
	return nil
}

func (r frameRecorder) next(t *testing.T) frame {
	t.Helper()
	select {
	case f := <-r:
		return f
	case <-time.After(waitMax):
		t.Fatal("no frame sent")
		return frame{}
	}
}

// openSingle opens a one-node controller (leader once it applied its
// first entry) over a MemStorage, sending frames to tr.
func openSingle(t *testing.T, tr FrameSender) *Controller {
	t.Helper()
	c, closeNode := openSingleIn(t, testEnv(vfs.NewMem(), 1), replica.NewMemStorage(), tr)
	t.Cleanup(closeNode)
	return c
}

// openSingleIn opens a one-node controller in /data of e's filesystem
// over log, and returns it once it leads with the function that closes
// it.
func openSingleIn(t *testing.T, e env.Env, log Log, tr FrameSender) (*Controller, func()) {
	t.Helper()
	c, closeNode, err := tryOpenSingleIn(t, e, log, tr)
	if err != nil {
		t.Fatal(err)
	}
	propose(t, c, allocate(1))
	return c, closeNode
}

// tryOpenSingleIn is openSingleIn up to the controller's Open, whose
// error it returns (with the scheduler closed), proposing nothing.
func tryOpenSingleIn(t *testing.T, e env.Env, log Log, tr FrameSender) (*Controller, func(), error) {
	t.Helper()
	ident, err := OpenIdentity(e.FS, "/data", 1, "")
	if errors.Is(err, ErrNoIdentity) {
		clusterID, cerr := NewClusterID(e)
		if cerr != nil {
			t.Fatal(cerr)
		}
		ident, err = OpenIdentity(e.FS, "/data", 1, clusterID)
	}
	if err != nil {
		t.Fatal(err)
	}
	s, err := replica.NewScheduler(e, replica.SchedulerConfig{Workers: 1, SyncWorkers: 1}, noSender{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(Config{Env: e, DataDir: "/data", Identity: ident, Log: log, Scheduler: s, Transport: tr})
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return c, func() { c.Close(); s.Close() }, nil
}

// Bytes that are no command, or too many, are refused before they are
// proposed (so they cannot reach the log), and the group goes on.
func TestProposeLocalRefusesWhatIsNoCommand(t *testing.T) {
	c := openSingle(t, nil)
	for name, data := range map[string][]byte{
		"garbage":   {0xff, 0xff, 0xff},
		"oversized": make([]byte, commandBytesMax+1),
	} {
		before := c.Applied()
		deadline := time.NewTimer(waitMax)
		_, _, err := c.proposeLocal(context.Background(), data, deadline.C)
		deadline.Stop()
		if !errors.Is(err, meta.ErrInvalidCommand) {
			t.Fatalf("%s: %v, want %v", name, err, meta.ErrInvalidCommand)
		}
		if c.Applied() != before {
			t.Fatalf("%s: proposed all the same (applied %d, was %d)", name, c.Applied(), before)
		}
	}
	if res := propose(t, c, allocate(1)); res.FirstProducerId != meta.ProducerIDBlock {
		t.Fatalf("after the refusals the next block starts at %d", res.FirstProducerId)
	}
}

// A forwarded request whose command does not decode is answered with a
// failed status, and the leader goes on.
func TestForwardedGarbageIsAnsweredFailed(t *testing.T) {
	sent := make(frameRecorder, 4)
	c := openSingle(t, sent)
	c.HandleProposeFrame(2, encodePropose(7, []byte{0xff, 0xff, 0xff}))
	f := sent.next(t)
	r, err := decodeResult(f.payload)
	if err != nil {
		t.Fatal(err)
	}
	if f.to != 2 || f.typ != transport.FrameMetaProposeResult || r.requestID != 7 || r.status != statusFailed {
		t.Fatalf("answer to node %d, type %v: %+v", f.to, f.typ, r)
	}
	propose(t, c, allocate(1))
}

// An entry whose command does not decode, committed all the same (by a
// leader that did not check), is refused alike on every node rather than
// failing the group: the applied index and offset move past it.
func TestUndecodableEntryIsARefusal(t *testing.T) {
	c := bareController(t)
	sm := (*stateMachine)(c)
	p := &replica.Proposal{Data: []byte{0xff, 0xff, 0xff}}
	if err := sm.PrepareProposal(p, replica.ProposalPoint{Index: 2, Term: 1}); err != nil {
		t.Fatal(err)
	}
	w := wait(c, 2, 1)
	if err := sm.Apply([]*raftpb.Entry{{Index: new(uint64(2)), Term: new(uint64(1)), Data: p.Data}}); err != nil {
		t.Fatalf("apply: %v", err)
	}
	r := outcome(t, w)
	if r.err != nil || r.result.GetCode() != metav1.ErrorCode_ERROR_CODE_INVALID_COMMAND {
		t.Fatalf("outcome %+v, want an INVALID_COMMAND result", r)
	}
	if c.Applied() != 2 || c.machine.AppliedIndex() != 2 {
		t.Fatalf("applied %d, machine %d", c.Applied(), c.machine.AppliedIndex())
	}
	if err := sm.Apply([]*raftpb.Entry{prepared(t, c, allocate(1), 3, 1)}); err != nil {
		t.Fatalf("the entry after: %v", err)
	}
}

// forwardOnce forwards a MetaPropose to node (this node's own: the leader
// known here) and returns the request id of the frame sent and where the
// result will arrive.
func forwardOnce(t *testing.T, c *Controller, sent frameRecorder, node uint64) (uint64, <-chan forwardResult) {
	t.Helper()
	got := make(chan forwardResult, 1)
	go func() {
		deadline := time.NewTimer(waitMax)
		defer deadline.Stop()
		r, err := c.forwardFrame(context.Background(), node, transport.FrameMetaPropose, []byte("command"), deadline.C)
		if err != nil {
			t.Errorf("forward: %v", err)
		}
		got <- r
	}()
	f := sent.next(t)
	id, _, err := decodePropose(f.payload)
	if err != nil || f.to != node {
		t.Fatalf("sent to node %d: %v", f.to, err)
	}
	return id, got
}

func answer(c *Controller, from, id, index uint64) {
	c.HandleResultFrame(from, encodeResult(forwardResult{requestID: id, status: statusApplied, index: index}))
}

func resultIndex(t *testing.T, got <-chan forwardResult) uint64 {
	t.Helper()
	select {
	case r := <-got:
		return r.index
	case <-time.After(waitMax):
		t.Fatal("the forward was not answered")
		return 0
	}
}

// A forwarded request takes its result only from the node it went to,
// and with its own request id: a result from another node, or one of an
// earlier request, is dropped.
func TestForwardTakesOnlyItsOwnResult(t *testing.T) {
	sent := make(frameRecorder, 4)
	c := openSingle(t, sent)
	id, got := forwardOnce(t, c, sent, 1)
	answer(c, 3, id, 100)   // another node
	answer(c, 1, id-1, 101) // an earlier request
	answer(c, 1, id, 7)
	if index := resultIndex(t, got); index != 7 {
		t.Fatalf("took the result at index %d, want its own at 7", index)
	}
}

// Request ids do not start over when the controller opens again: a late
// result meant for the previous run answers nothing of the next.
func TestForwardIgnoresAResultOfAnEarlierRun(t *testing.T) {
	e, log := testEnv(vfs.NewMem(), 1), replica.NewMemStorage()
	sent := make(frameRecorder, 4)
	c, closeNode := openSingleIn(t, e, log, sent)
	earlier, got := forwardOnce(t, c, sent, 1)
	answer(c, 1, earlier, 5)
	resultIndex(t, got)
	closeNode()

	c, closeNode = openSingleIn(t, e, log, sent)
	defer closeNode()
	id, got := forwardOnce(t, c, sent, 1)
	answer(c, 1, earlier, 5) // the previous run's result, arriving late
	answer(c, 1, id, 9)
	if index := resultIndex(t, got); index != 9 {
		t.Fatalf("took the result at index %d, want its own at 9", index)
	}
}

// A forwarded request goes again under its id while unanswered, so a lost
// frame costs a resend interval instead of the caller's timeout; the
// answer to either copy ends the wait.
func TestForwardIsSentAgainUntilAnswered(t *testing.T) {
	sent := make(frameRecorder, 4)
	c := openSingle(t, sent)
	id, got := forwardOnce(t, c, sent, 1)
	// The first frame was lost: nobody answers it.
	again := sent.next(t)
	againID, body, err := decodePropose(again.payload)
	if err != nil || again.to != 1 || again.typ != transport.FrameMetaPropose || againID != id || string(body) != "command" {
		t.Fatalf("sent again: %+v (id %d, want %d; %v)", again, againID, id, err)
	}
	answer(c, 1, id, 9)
	if index := resultIndex(t, got); index != 9 {
		t.Fatalf("took the result at index %d, want 9", index)
	}
}
