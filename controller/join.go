package controller

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/transport"
)

// Joining an existing cluster under a new incarnation: a node whose peers
// say the cluster exists (NodeJoin frames), or that knows only a member's
// address (a join connection, JoinByAddress). Either way a member runs
// AddNode's steps with the node's registration nonce and answers a
// JoinAnswer.

// nodeJoin is a NodeJoin payload: the joining node's request.
type nodeJoin struct {
	requestID uint64
	nodeID    int32
	nonce     []byte
	raftAddr  string
}

// NodeJoin's payload, big-endian: request id (8), node id (4), nonce
// length (1), nonce, Raft address (the rest). NodeJoinResult has
// MetaProposeResult's layout: index = the incarnation, body = the
// JoinAnswer when applied (encodeJoinAnswer).
func encodeNodeJoin(j nodeJoin) []byte {
	b := binary.BigEndian.AppendUint64(nil, j.requestID)
	b = binary.BigEndian.AppendUint32(b, uint32(j.nodeID))
	b = append(b, byte(len(j.nonce)))
	b = append(b, j.nonce...)
	return append(b, j.raftAddr...)
}

func decodeNodeJoin(p []byte) (nodeJoin, error) {
	if len(p) < 13 || len(p) < 13+int(p[12]) {
		return nodeJoin{}, fmt.Errorf("%w: node join of %d bytes", errBadFrame, len(p))
	}
	n := int(p[12])
	return nodeJoin{
		requestID: binary.BigEndian.Uint64(p),
		nodeID:    int32(binary.BigEndian.Uint32(p[8:])),
		nonce:     append([]byte(nil), p[13:13+n]...),
		raftAddr:  string(p[13+n:]),
	}, nil
}

// joinAttemptTimeout bounds one NodeJoin: the member registers the node
// and adds its learner, each bounded by its ProposeTimeout.
func (c *Controller) joinAttemptTimeout() time.Duration { return 3 * c.cfg.ProposeTimeout }

// requestJoin asks the members in turn to register this node under a new
// incarnation and add it as a learner, until one answers or ProbeTimeout
// passes. Every attempt carries the node's nonce, so one whose answer was
// lost and is asked again gets the same incarnation.
func (c *Controller) requestJoin(members []int32) (JoinAnswer, error) {
	p := c.cfg.Probe
	deadline := c.e.Clock.NewTimer(c.cfg.ProbeTimeout)
	defer deadline.Stop()
	ch := make(chan forwardResult, 1)
	var last error
	for attempt := 0; ; attempt++ {
		to := members[attempt%len(members)]
		p.mu.Lock()
		if p.nextID == 0 {
			// A random start, as Open's for proposals: a member remembers
			// the joins it served by id (servedTable), and this process's
			// ids must not meet an earlier run's (a node wiped twice).
			p.nextID = randomRequestID(c.e.Rand)
		}
		p.nextID++
		id := p.nextID
		p.joins[id] = ch
		p.mu.Unlock()
		req := nodeJoin{requestID: id, nodeID: c.identity.NodeID, nonce: c.identity.Nonce, raftAddr: c.cfg.Peers[c.identity.NodeID]}
		r, err := c.awaitJoin(to, req, ch, deadline.C())
		p.mu.Lock()
		delete(p.joins, id)
		p.mu.Unlock()
		switch {
		case err == nil && r.status == statusApplied:
			return decodeJoinAnswer(r.index, r.body)
		case err == nil:
			last = forwardedErr(uint64(to), r)
		case errors.Is(err, errJoinDeadline):
			return JoinAnswer{}, fmt.Errorf("controller: join the existing cluster through nodes %v: %w (last: %v)", members, err, last)
		default:
			last = err
		}
		pause := c.e.Clock.NewTimer(c.cfg.RetryDelay)
		select {
		case <-pause.C():
		case <-deadline.C():
			pause.Stop()
			return JoinAnswer{}, fmt.Errorf("controller: join the existing cluster through nodes %v: %w (last: %v)", members, errJoinDeadline, last)
		}
	}
}

var errJoinDeadline = errors.New("no member registered this node in time")

// awaitJoin sends one NodeJoin and waits for its answer.
func (c *Controller) awaitJoin(to int32, req nodeJoin, ch chan forwardResult, deadline <-chan time.Time) (forwardResult, error) {
	frame := encodeNodeJoin(req)
	if err := c.cfg.Transport.SendFrame(uint64(to), transport.FrameNodeJoin, frame); err != nil {
		return forwardResult{}, fmt.Errorf("send to node %d: %w", to, err)
	}
	attempt := c.e.Clock.NewTimer(c.joinAttemptTimeout())
	defer attempt.Stop()
	// Sent again under its id until answered, as forwardFrame does: the
	// member serves it once.
	resend := c.e.Clock.NewTimer(c.cfg.ResendInterval)
	defer resend.Stop()
	for {
		select {
		case r := <-ch:
			if r.requestID == req.requestID {
				return r, nil
			}
		case <-resend.C():
			_ = c.cfg.Transport.SendFrame(uint64(to), transport.FrameNodeJoin, frame)
			resend.Reset(c.cfg.ResendInterval)
		case <-attempt.C():
			return forwardResult{}, fmt.Errorf("node %d did not answer", to)
		case <-deadline:
			return forwardResult{}, errJoinDeadline
		}
	}
}

// HandleNodeJoinFrame serves a NodeJoin: a node that found the cluster
// existing (its data was lost, or it started late) asks to be registered
// under a new incarnation and added as a learner. Only the node itself
// may ask for itself. The leader then removes the node's older
// incarnations from the group (tendMembers).
func (c *Controller) HandleNodeJoinFrame(from uint64, payload []byte) {
	j, err := decodeNodeJoin(payload)
	if err == nil && uint64(j.nodeID) != from {
		err = fmt.Errorf("node %d asked to join as node %d", from, j.nodeID)
	}
	if err != nil {
		c.e.Logger.Warn("controller: dropped a node join", "from", from, "err", err)
		return
	}
	c.serveOnce(from, j.requestID, transport.FrameNodeJoin, transport.FrameNodeJoinResult, func() forwardResult { return c.answerJoin(j) })
}

// answerJoin registers the node of a NodeJoin and adds it as a learner,
// bounded by joinAttemptTimeout; applied, the answer's body is the cluster
// id and every broker's Raft address (joinAnswer).
func (c *Controller) answerJoin(j nodeJoin) forwardResult {
	ctx, cancel := env.WithTimeout(c.ctx, c.e.Clock, c.joinAttemptTimeout())
	defer cancel()
	incarnation, err := c.addNode(ctx, j.nodeID, j.raftAddr, j.nonce)
	if err != nil {
		return resultOf(j.requestID, 0, nil, err)
	}
	answer := JoinAnswer{ClusterID: c.identity.ClusterID, Incarnation: incarnation, Peers: map[int32]string{}}
	for _, b := range c.State().Brokers {
		if b.RaftAddr != "" && b.State != metav1.BrokerState_BROKER_STATE_REMOVED {
			answer.Peers[b.NodeId] = b.RaftAddr
		}
	}
	return forwardResult{requestID: j.requestID, status: statusApplied, index: uint64(incarnation), body: encodeJoinAnswer(answer)}
}

// JoinAnswer is what a member answers a node it registered: the cluster
// id, the node's incarnation, and the Raft address of every broker (the
// node's transport peers).
type JoinAnswer struct {
	ClusterID   string
	Incarnation uint32
	Peers       map[int32]string
}

// NodeJoinResult's body when applied: cluster id length (1), cluster id,
// then per broker, by ascending node id: node id (4), address length (1),
// address; big-endian.
func encodeJoinAnswer(a JoinAnswer) []byte {
	b := append([]byte{byte(len(a.ClusterID))}, a.ClusterID...)
	for _, node := range slices.Sorted(maps.Keys(a.Peers)) {
		b = binary.BigEndian.AppendUint32(b, uint32(node))
		b = append(b, byte(len(a.Peers[node])))
		b = append(b, a.Peers[node]...)
	}
	return b
}

func decodeJoinAnswer(incarnation uint64, body []byte) (JoinAnswer, error) {
	bad := fmt.Errorf("%w: join answer of %d bytes", errBadFrame, len(body))
	if len(body) < 1 || len(body) < 1+int(body[0]) || incarnation < 1 || incarnation > meta.IncarnationMax {
		return JoinAnswer{}, bad
	}
	n := 1 + int(body[0])
	a := JoinAnswer{ClusterID: string(body[1:n]), Incarnation: uint32(incarnation), Peers: map[int32]string{}}
	last := int64(-1)
	for rest := body[n:]; len(rest) > 0; {
		if len(rest) < 5 || len(rest) < 5+int(rest[4]) {
			return JoinAnswer{}, bad
		}
		node, end := int32(binary.BigEndian.Uint32(rest)), 5+int(rest[4])
		if int64(node) <= last { // ascending, as encoded: one address per node
			return JoinAnswer{}, fmt.Errorf("%w: join answer lists node %d out of order", errBadFrame, node)
		}
		a.Peers[node], last = string(rest[5:end]), int64(node)
		rest = rest[end:]
	}
	return a, nil
}

// ServeJoin serves a join connection's NodeJoin (transport.JoinHandler):
// a node that knows only this member's address asks to be added. The
// member registers it and has the leader add it as a learner, as for a
// NodeJoin frame, and returns the NodeJoinResult payload.
func (c *Controller) ServeJoin(from uint64, payload []byte) []byte {
	j, err := decodeNodeJoin(payload)
	if err == nil && uint64(j.nodeID) != from {
		err = fmt.Errorf("node %d asked to join as node %d", from, j.nodeID)
	}
	if err != nil {
		c.e.Logger.Warn("controller: refused a join", "from", from, "err", err)
		return nil
	}
	if err := c.checkJoinAddress(j); err != nil {
		c.e.Logger.Warn("controller: refused a join", "from", from, "err", err)
		return encodeResult(forwardResult{requestID: j.requestID, status: statusRefused, body: []byte(err.Error())})
	}
	return encodeResult(c.answerJoin(j))
}

// checkJoinAddress refuses a join connection's request for a registered
// node id at another Raft address: anyone can dial a join connection, and
// a node started with a live member's id by mistake would otherwise
// replace it (its new incarnation has the leader remove the old one). A
// node that lost its data comes back at its own address; one that moved
// is removed first (or rejoins with --peers, through its known peers).
func (c *Controller) checkJoinAddress(j nodeJoin) error {
	c.mu.Lock()
	b, ok := c.machine.Broker(j.nodeID)
	c.mu.Unlock()
	if ok && b.State != metav1.BrokerState_BROKER_STATE_REMOVED && b.RaftAddr != "" && b.RaftAddr != j.raftAddr {
		return fmt.Errorf("node %d is registered at %s, not %s", j.nodeID, b.RaftAddr, j.raftAddr)
	}
	return nil
}

// JoinByAddress asks the member at addr, which need not know this node,
// to register node nodeID (at raftAddr, with its registration nonce)
// under a new incarnation and add it to the meta group as a learner; the
// member forwards to the meta leader. The node then writes its identity
// from the answer and starts with Config.Join. Asked again with the same
// nonce after a lost answer, it gets the same incarnation.
// With tlsCfg the join connection runs over TLS (transport.Config.TLS).
func JoinByAddress(ctx context.Context, addr string, nodeID int32, raftAddr string, nonce []byte, tlsCfg *tls.Config) (JoinAnswer, error) {
	return JoinThrough(ctx, transport.TCPJoiner(tlsCfg), addr, nodeID, raftAddr, nonce)
}

// JoinThrough is JoinByAddress over join's exchange (a simulation's
// network instead of TCP).
func JoinThrough(ctx context.Context, join transport.Joiner, addr string, nodeID int32, raftAddr string, nonce []byte) (JoinAnswer, error) {
	req := encodeNodeJoin(nodeJoin{requestID: 1, nodeID: nodeID, nonce: nonce, raftAddr: raftAddr})
	member, payload, err := join(ctx, addr, uint64(nodeID), req)
	if err != nil {
		return JoinAnswer{}, fmt.Errorf("controller: %w", err)
	}
	r, err := decodeResult(payload)
	if err != nil {
		return JoinAnswer{}, err
	}
	if err := forwardedErr(member.NodeID, r); err != nil {
		return JoinAnswer{}, fmt.Errorf("controller: join through %s: %w", addr, err)
	}
	a, err := decodeJoinAnswer(r.index, r.body)
	if err != nil {
		return JoinAnswer{}, err
	}
	if a.ClusterID != member.ClusterID {
		return JoinAnswer{}, fmt.Errorf("controller: join through %s: answered for cluster %q by a node of %q", addr, a.ClusterID, member.ClusterID)
	}
	return a, nil
}

// NewNonce draws a registration nonce, for a node that joins before it
// has a node.json (JoinByAddress); Config.Identity then carries it.
func NewNonce(e env.Env) ([]byte, error) {
	var id Identity
	if err := id.drawNonce(e); err != nil {
		return nil, err
	}
	return id.Nonce, nil
}

// rejoin makes a new node of an existing cluster (members hold it) a
// member under a new incarnation, asked of the members, instead of
// bootstrapping: its empty log then waits for the leader's snapshot, as a
// node started with Config.Join does. Without a Config.Log the own meta
// log is created empty under the new replica id, before node.json names
// that incarnation.
func (c *Controller) rejoin(members []int32) error {
	if c.log != nil {
		if err := c.checkNeverVoted(); err != nil {
			return err
		}
	}
	answer, err := c.requestJoin(members)
	if err != nil {
		return err
	}
	incarnation, clusterID := answer.Incarnation, answer.ClusterID
	if clusterID != c.identity.ClusterID {
		return fmt.Errorf("%w: nodes %v answered for cluster %q, this node was started for %q", ErrIdentityMismatch, members, clusterID, c.identity.ClusterID)
	}
	c.identity.Incarnation, c.rejoined, c.joinedPeers = incarnation, true, answer.Peers
	c.id = c.identity.ReplicaID()
	if c.log == nil {
		if err := c.createEmptyLog(); err != nil {
			return err
		}
	}
	c.e.Logger.Info("controller: the cluster exists; joined it under a new incarnation", "node", c.identity.NodeID, "incarnation", incarnation, "through", members)
	return nil
}

// JoiningIdentity is the identity of a new node that JoinByAddress
// registered: the answer's cluster and incarnation, the nonce it asked
// with. New: Open (with Config.Join) creates the empty meta log, then
// writes it as node.json.
func JoiningIdentity(nodeID int32, nonce []byte, a JoinAnswer) Identity {
	return Identity{Version: nodeFileVersion, ClusterID: a.ClusterID, NodeID: nodeID, Incarnation: a.Incarnation, Nonce: nonce, New: true}
}
