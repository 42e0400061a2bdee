package controller

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/transport"
	"google.golang.org/protobuf/proto"
)

// Propose has cmd applied by the metadata group and returns its Result
// once this node has applied it, so the caller reads its own write in
// State. On the leader it proposes locally; elsewhere it forwards cmd to
// the leader. A command known not to be applied (no leader, a leader that
// lost it to its successor) is proposed again until ProposeTimeout, then
// ErrNotController; one whose fate is unknown fails with ErrTimeout. A
// refusal by the machine is a Result with an error code (meta.ResultError).
func (c *Controller) Propose(ctx context.Context, cmd *metav1.Command) (*metav1.Result, error) {
	data, err := meta.EncodeCommand(cmd)
	if err != nil {
		return nil, err
	}
	if err := checkCommand(data); err != nil {
		return nil, err
	}
	deadline := c.e.Clock.NewTimer(c.cfg.ProposeTimeout)
	defer deadline.Stop()
	for {
		l, moved := c.leaderView()
		var (
			index uint64
			res   *metav1.Result
		)
		switch {
		case l.Leader == 0:
			err = ErrNotController
		case l.Leader == c.id:
			index, res, err = c.proposeLocal(ctx, data, deadline.C())
		default:
			index, res, err = c.forward(ctx, transport.NodeOf(l.Leader), data, deadline.C())
		}
		if err == nil {
			if err := c.waitApplied(ctx, index, deadline.C()); err != nil {
				return nil, fmt.Errorf("applied at %d by the leader, not yet here: %w", index, err)
			}
			return res, nil
		}
		if !errors.Is(err, ErrNotController) {
			return nil, err
		}
		if perr := c.pause(ctx, moved, deadline.C()); perr != nil {
			return nil, fmt.Errorf("%w (last attempt: %w)", perr, err)
		}
	}
}

// pause waits for a leadership change or RetryDelay before proposing
// again; it fails at the deadline.
func (c *Controller) pause(ctx context.Context, moved <-chan struct{}, deadline <-chan time.Time) error {
	retry := c.e.Clock.NewTimer(c.cfg.RetryDelay)
	defer retry.Stop()
	select {
	case <-moved:
		return nil
	case <-retry.C():
		return nil
	case <-deadline:
		return ErrNotController
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return ErrClosed
	}
}

// commandBytesMax bounds a command of the meta log: far above any command
// the cluster writes (a CreateTopic of thousands of partitions), and at
// raft's default message size, so one entry never crowds a message alone.
const commandBytesMax = 1 << 20

// checkCommand refuses bytes that cannot be a command of the meta log (too
// many, or not decoding), before they are proposed: a forwarded request
// carries whatever its sender wrote.
func checkCommand(data []byte) error {
	if len(data) > commandBytesMax {
		return fmt.Errorf("controller: %w: %d bytes, at most %d", meta.ErrInvalidCommand, len(data), commandBytesMax)
	}
	if _, err := meta.DecodeCommand(data); err != nil {
		return fmt.Errorf("controller: %w: %w", meta.ErrInvalidCommand, err)
	}
	return nil
}

// proposeLocal checks the command, proposes it on this node's replica and
// waits for the entry to apply here.
func (c *Controller) proposeLocal(ctx context.Context, data []byte, deadline <-chan time.Time) (uint64, *metav1.Result, error) {
	if err := checkCommand(data); err != nil {
		return 0, nil, err
	}
	w := &waiter{done: make(chan waitResult, 1)}
	var (
		at  replica.ProposalPoint
		err error
	)
	replaced := c.replacedReplica(data)
	doErr := c.cfg.Scheduler.Do(GroupID, func(r *replica.Replica) {
		if err = checkSilent(r, replaced); err != nil {
			return
		}
		at, err = r.Propose(replica.Proposal{Data: data})
		switch {
		case errors.Is(err, replica.ErrProposalDropped):
			c.prepNext-- // PrepareProposal stamped it; the next proposal takes its offset
		case err == nil:
			// Registered before the worker can apply the entry, which it
			// does only after this call returns.
			w.term = at.Term
			c.mu.Lock()
			c.waiters[at.Index] = w
			c.mu.Unlock()
		}
	})
	if doErr != nil {
		return 0, nil, mapSchedulerErr(doErr)
	}
	if errors.Is(err, replica.ErrNotLeader) || errors.Is(err, replica.ErrProposalDropped) {
		return 0, nil, fmt.Errorf("%w: %w", ErrNotController, err)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("controller: propose: %w", err)
	}
	select {
	case r := <-w.done:
		return at.Index, r.result, r.err
	case <-deadline:
	case <-ctx.Done():
	case <-c.ctx.Done():
	}
	c.mu.Lock()
	delete(c.waiters, at.Index)
	c.mu.Unlock()
	if c.ctx.Err() != nil {
		return 0, nil, ErrClosed
	}
	return 0, nil, fmt.Errorf("%w: proposed at %d in term %d: %w", ErrTimeout, at.Index, at.Term, cmpErr(ctx.Err()))
}

func cmpErr(err error) error {
	if err == nil {
		return errors.New("deadline passed")
	}
	return err
}

// forward sends the command to the leader's node and waits for its
// answer: the index it applied at and the Result.
func (c *Controller) forward(ctx context.Context, node uint64, data []byte, deadline <-chan time.Time) (uint64, *metav1.Result, error) {
	r, err := c.forwardFrame(ctx, node, transport.FrameMetaPropose, data, deadline)
	if err != nil {
		return 0, nil, err
	}
	if err := forwardedErr(node, r); err != nil {
		return 0, nil, err
	}
	res := &metav1.Result{}
	if err := proto.Unmarshal(r.body, res); err != nil {
		return 0, nil, fmt.Errorf("%w: result from node %d: %w", ErrTimeout, node, err)
	}
	return r.index, res, nil
}

// pendingForward is a forwarded request waiting for its result: only the
// node it went to answers it.
type pendingForward struct {
	node uint64
	ch   chan forwardResult // buffered, 1
}

// randomRequestID is where a controller's request ids start. Results carry
// only the id: starting each run at the same one would let a late result
// meant for the previous run answer a request of this one.
func randomRequestID(r *env.Rand) uint64 {
	var b [8]byte
	_, _ = r.Read(b[:]) // never fails
	return binary.BigEndian.Uint64(b[:])
}

// forwardFrame sends a request frame (request id, body) to node and waits
// for the result frame with its id from that node.
func (c *Controller) forwardFrame(ctx context.Context, node uint64, typ transport.FrameType, body []byte, deadline <-chan time.Time) (forwardResult, error) {
	if c.cfg.Transport == nil {
		return forwardResult{}, fmt.Errorf("%w: leader on node %d, no transport", ErrNotController, node)
	}
	ch := make(chan forwardResult, 1)
	c.mu.Lock()
	c.nextRequest++
	id := c.nextRequest
	c.forwards[id] = pendingForward{node: node, ch: ch}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.forwards, id)
		c.mu.Unlock()
	}()
	frame := encodePropose(id, body)
	if err := c.cfg.Transport.SendFrame(node, typ, frame); err != nil {
		// Not sent: safe to send again.
		return forwardResult{}, fmt.Errorf("%w: forward to node %d: %w", ErrNotController, node, err)
	}
	// Sent again under its id until answered: the node serves it once
	// (servedTable), and a lost frame costs a resend interval.
	resend := c.e.Clock.NewTimer(c.cfg.ResendInterval)
	defer resend.Stop()
	for {
		l, moved := c.leaderView()
		if l.Leader != 0 && transport.NodeOf(l.Leader) != node {
			// The node it went to lost the leadership (or died): it may
			// have acted on the request, so its fate is unknown, and
			// waiting longer for an answer would only delay the caller.
			return forwardResult{}, fmt.Errorf("%w: forwarded to node %d, the leader is now on node %d", ErrTimeout, node, transport.NodeOf(l.Leader))
		}
		select {
		case r := <-ch:
			return r, nil
		case <-moved:
		case <-resend.C():
			_ = c.cfg.Transport.SendFrame(node, typ, frame) // lost too: the next resend
			resend.Reset(c.cfg.ResendInterval)
		case <-deadline:
			return forwardResult{}, fmt.Errorf("%w: forwarded to node %d, no answer", ErrTimeout, node)
		case <-ctx.Done():
			return forwardResult{}, fmt.Errorf("%w: forwarded to node %d: %w", ErrTimeout, node, ctx.Err())
		case <-c.ctx.Done():
			return forwardResult{}, ErrClosed
		}
	}
}

// forwardedErr is the error a result's status stands for.
func forwardedErr(node uint64, r forwardResult) error {
	switch r.status {
	case statusApplied:
		return nil
	case statusNotController:
		return fmt.Errorf("%w: node %d is not the leader", ErrNotController, node)
	case statusRefused:
		return fmt.Errorf("%w: by node %d: %s", ErrRefused, node, r.body)
	case statusRefusedLive:
		return fmt.Errorf("%w: by node %d: %s", ErrLiveIncarnation, node, r.body)
	default:
		return fmt.Errorf("%w: on node %d: %s", ErrTimeout, node, r.body)
	}
}

// servedPerSlot sizes the window of forwarded proposals remembered
// (servedTable): ForwardedMax times this many, 4096 by default, far more
// than arrive while a duplicated frame is on its way.
const servedPerSlot = 16

// HandleProposeFrame serves a MetaPropose frame (transport.Config.Handlers):
// the command is proposed on a goroutine of its own, at most ForwardedMax
// at once, and answered with a MetaProposeResult. A copy of a request
// served lately (the same sender and id) is not proposed again: it gets
// the first copy's answer, or none while that one is being served.
func (c *Controller) HandleProposeFrame(from uint64, payload []byte) {
	id, data, err := decodePropose(payload)
	if err != nil {
		c.e.Logger.Warn("controller: dropped a forwarded proposal", "from", from, "err", err)
		return
	}
	c.serveOnce(from, id, transport.FrameMetaPropose, transport.FrameMetaProposeResult, func() forwardResult { return c.serveForwarded(id, data) })
}

// serveOnce serves a request of type typ with serve, unless a copy of it
// (the same sender, type and id) arrived lately: then it answers with the
// first copy's result, or nothing while that one is being served.
func (c *Controller) serveOnce(from, id uint64, typ, resultTyp transport.FrameType, run func() forwardResult) {
	k := requestKey{from: from, id: id, typ: typ}
	c.mu.Lock()
	first, r, answered := c.served.begin(k)
	c.mu.Unlock()
	if !first {
		if answered {
			c.reply(from, resultTyp, r)
		}
		return
	}
	c.serve(from, id, resultTyp, run, func(r forwardResult) {
		c.mu.Lock()
		c.served.finish(k, r)
		c.mu.Unlock()
	})
}

// serve runs a forwarded request on a goroutine of its own, at most
// ForwardedMax at once, and sends its result in a frame of type typ,
// after handing it to answered when that is set.
func (c *Controller) serve(from, id uint64, typ transport.FrameType, run func() forwardResult, answered func(forwardResult)) {
	send := func(r forwardResult) {
		if answered != nil {
			answered(r)
		}
		c.reply(from, typ, r)
	}
	select {
	case c.forwardSlots <- struct{}{}:
	default:
		// Not acted on: the sender may try again after its pause.
		send(forwardResult{requestID: id, status: statusNotController})
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed { // Close is waiting for the goroutines it knows of
		<-c.forwardSlots
		return
	}
	c.wg.Go(func() {
		defer func() { <-c.forwardSlots }()
		send(run())
	})
}

// serveForwarded proposes a forwarded command here, if this node leads.
func (c *Controller) serveForwarded(id uint64, data []byte) forwardResult {
	if l, _ := c.leaderView(); l.Leader != c.id {
		return forwardResult{requestID: id, status: statusNotController}
	}
	deadline := c.e.Clock.NewTimer(c.cfg.ProposeTimeout)
	defer deadline.Stop()
	index, res, err := c.proposeLocal(c.ctx, data, deadline.C())
	return resultOf(id, index, res, err)
}

// resultOf is the result frame of a request served here.
func resultOf(id, index uint64, res *metav1.Result, err error) forwardResult {
	switch {
	case errors.Is(err, ErrNotController):
		return forwardResult{requestID: id, status: statusNotController}
	case errors.Is(err, ErrLiveIncarnation):
		return forwardResult{requestID: id, status: statusRefusedLive, body: []byte(err.Error())}
	case errors.Is(err, ErrRefused):
		return forwardResult{requestID: id, status: statusRefused, body: []byte(err.Error())}
	case err != nil:
		return forwardResult{requestID: id, status: statusFailed, body: []byte(err.Error())}
	}
	var body []byte
	if res != nil {
		if body, err = proto.Marshal(res); err != nil {
			return forwardResult{requestID: id, status: statusFailed, body: []byte(err.Error())}
		}
	}
	return forwardResult{requestID: id, status: statusApplied, index: index, body: body}
}

func (c *Controller) reply(to uint64, typ transport.FrameType, r forwardResult) {
	if err := c.cfg.Transport.SendFrame(to, typ, encodeResult(r)); err != nil {
		// The sender's deadline answers it: ErrTimeout, as for any lost frame.
		c.e.Logger.Warn("controller: dropped a forwarded request's result", "to", to, "err", err)
	}
}

// HandleResultFrame receives a MetaProposeResult or JoinResult frame: the
// result of a request waiting here, when from is the node it went to. A
// result of no request waiting (answered late, or meant for an earlier
// run) is dropped.
func (c *Controller) HandleResultFrame(from uint64, payload []byte) {
	r, err := decodeResult(payload)
	if err != nil {
		c.e.Logger.Warn("controller: dropped a forwarded result", "from", from, "err", err)
		return
	}
	c.mu.Lock()
	f, ok := c.forwards[r.requestID]
	c.mu.Unlock()
	if !ok {
		return
	}
	if f.node != from {
		c.e.Logger.Warn("controller: dropped a forwarded result from another node", "from", from, "to", f.node, "request", r.requestID)
		return
	}
	select {
	case f.ch <- r:
	default: // a duplicate
	}
}

// FrameHandlers returns the transport handlers of the frames the
// controller serves, calling the controller get returns (nil before it
// is open: frames are dropped, and their senders time out or retry).
func FrameHandlers(get func() *Controller) map[transport.FrameType]transport.FrameHandler {
	return map[transport.FrameType]transport.FrameHandler{
		transport.FrameMetaPropose: func(from uint64, p []byte) {
			if c := get(); c != nil {
				c.HandleProposeFrame(from, p)
			}
		},
		transport.FrameMetaProposeResult: func(from uint64, p []byte) {
			if c := get(); c != nil {
				c.HandleResultFrame(from, p)
			}
		},
		transport.FrameJoin: func(from uint64, p []byte) {
			if c := get(); c != nil {
				c.HandleJoinFrame(from, p)
			}
		},
		transport.FrameJoinResult: func(from uint64, p []byte) {
			if c := get(); c != nil {
				c.HandleResultFrame(from, p)
			}
		},
		transport.FrameNodeJoin: func(from uint64, p []byte) {
			if c := get(); c != nil {
				c.HandleNodeJoinFrame(from, p)
			}
		},
	}
}
