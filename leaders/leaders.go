package leaders

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/transport"
)

// Sender sends a frame to a peer node without blocking; an error means
// the frame was dropped. *transport.TCP is one.
type Sender interface {
	SendFrame(to uint64, typ transport.FrameType, payload []byte) error
}

// Leaders is a node's leader table with its driver: Run sends heartbeats
// and expires silent peers on the env's clock; the other methods are safe
// for concurrent use and never block on the network.
type Leaders struct {
	env    env.Env
	sender Sender
	wake   chan struct{} // holds one wake-up of Run after a local change

	mu    sync.Mutex
	table *Table
	// peers are the nodes heartbeats go to, each with whether its next
	// heartbeat must be full (new, or a frame to it was dropped).
	peers   map[uint64]bool
	changed chan struct{} // closed and replaced when readers' view changes
}

// New returns the leader table of the node cfg names, sending through
// sender once Run runs.
func New(e env.Env, cfg Config, sender Sender) (*Leaders, error) {
	e = e.Complete()
	if cfg.BootID == 0 {
		id, err := drawBootID(e.Rand)
		if err != nil {
			return nil, err
		}
		cfg.BootID = id
	}
	table, err := NewTable(cfg)
	if err != nil {
		return nil, err
	}
	return &Leaders{
		env:     e,
		sender:  sender,
		wake:    make(chan struct{}, 1),
		table:   table,
		peers:   map[uint64]bool{},
		changed: make(chan struct{}),
	}, nil
}

// drawBootID returns a random boot id for this process.
func drawBootID(r *env.Rand) (uint64, error) {
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, fmt.Errorf("leaders: draw a boot id: %w", err)
	}
	return binary.BigEndian.Uint64(b[:]), nil
}

// SetPeers sets the nodes heartbeats go to (this node is skipped). A new
// peer's first heartbeat is full.
func (l *Leaders) SetPeers(nodes []uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	keep := make(map[uint64]bool, len(nodes))
	for _, n := range nodes {
		if n == l.table.cfg.NodeID {
			continue
		}
		needFull, known := l.peers[n]
		keep[n] = needFull || !known
	}
	l.peers = keep
}

// PeerLost says frames to node may have been lost (the transport reported
// it unreachable): its next heartbeat is full.
func (l *Leaders) PeerLost(node uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.peers[node]; ok {
		l.peers[node] = true
	}
}

// LeadershipChanged records a local group's leadership as its replica
// (replicaID, on this node) reports it, and wakes Run when peers must
// hear of it.
func (l *Leaders) LeadershipChanged(group, replicaID uint64, ld replica.Leadership) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	changed, err := l.table.SetLocal(group, replicaID, ld)
	if err != nil {
		return err
	}
	l.afterLocalLocked(changed)
	return nil
}

// RemoveGroup records that a local group's replica left this node.
func (l *Leaders) RemoveGroup(group uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.afterLocalLocked(l.table.RemoveLocal(group))
}

func (l *Leaders) afterLocalLocked(changed bool) {
	if changed {
		l.notifyLocked()
	}
	if len(l.table.pending) > 0 {
		select {
		case l.wake <- struct{}{}:
		default: // Run is woken already
		}
	}
}

// Forget drops the row of a group that no longer exists (Table.Forget).
func (l *Leaders) Forget(group uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.table.Forget(group) {
		l.notifyLocked()
	}
}

// Receive applies a NodeHeartbeat payload from node from.
func (l *Leaders) Receive(from uint64, payload []byte) error {
	hb, err := transport.ParseNodeHeartbeat(payload)
	if err != nil {
		return fmt.Errorf("heartbeat from node %d: %w", from, err)
	}
	if hb.NodeID != from {
		return fmt.Errorf("heartbeat from node %d names node %d: %w", from, hb.NodeID, transport.ErrMalformed)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	changed, err := l.table.Receive(l.env.Clock.Now(), hb)
	if err != nil {
		return err
	}
	if changed {
		l.notifyLocked()
	}
	return nil
}

// FrameHandler is Receive as a transport handler for FrameNodeHeartbeat;
// a bad heartbeat is logged and dropped (the next full one heals).
func (l *Leaders) FrameHandler() transport.FrameHandler {
	return func(from uint64, payload []byte) {
		if err := l.Receive(from, payload); err != nil {
			l.env.Logger.Warn("leaders: heartbeat dropped", "node", from, "err", err)
		}
	}
}

// Leader returns the leader of group: its node, replica and term, ok when
// known; when not, term is the highest known (0 for a group never heard
// of). A leader on a node silent past the liveness timeout is unknown
// even before Run expires it.
func (l *Leaders) Leader(group uint64) (node, replicaID, term uint64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expireLocked()
	return l.table.Leader(group)
}

// Alive reports whether node's heartbeats arrive (this node: always).
func (l *Leaders) Alive(node uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.table.Alive(node, l.env.Clock.Now())
}

// Snapshot returns the table's rows, for status pages.
func (l *Leaders) Snapshot() Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expireLocked()
	return l.table.Snapshot(l.env.Clock.Now())
}

// Changed returns a channel closed at the next change of a leader, term
// or node's liveness; call it again for the change after. A waiter (a
// FindCoordinator retry, a forwarded append) takes it before looking the
// leader up, so no change between the two is missed.
func (l *Leaders) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

func (l *Leaders) notifyLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *Leaders) expireLocked() {
	if l.table.Expire(l.env.Clock.Now()) {
		l.notifyLocked()
	}
}

// Run sends heartbeats and expires silent peers until ctx ends.
func (l *Leaders) Run(ctx context.Context) {
	timer := l.env.Clock.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		timer.ResetAt(l.step())
		select {
		case <-ctx.Done():
			return
		case <-timer.C():
		case <-l.wake:
		}
	}
}

// outgoing is one heartbeat payload for one peer.
type outgoing struct {
	to      uint64
	payload []byte
}

// step expires silent peers, sends the heartbeat due if any (outside the
// lock: a Sender may take its time), and returns when to step next.
func (l *Leaders) step() time.Time {
	l.mu.Lock()
	l.expireLocked()
	sends := l.heartbeatsLocked(l.env.Clock.Now())
	next := l.table.NextSend()
	if expiry, ok := l.table.NextExpiry(); ok && expiry.Before(next) {
		next = expiry
	}
	l.mu.Unlock()
	for _, s := range sends {
		if err := l.sender.SendFrame(s.to, transport.FrameNodeHeartbeat, s.payload); err != nil {
			l.PeerLost(s.to)
		}
	}
	return next
}

// heartbeatsLocked builds the heartbeat due at now for every peer, in
// node order: most get the same delta, encoded once; see Table.ForPeer.
func (l *Leaders) heartbeatsLocked(now time.Time) []outgoing {
	hb, ok := l.table.Outgoing(now)
	if !ok {
		return nil
	}
	nodes := make([]uint64, 0, len(l.peers))
	for n := range l.peers {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	type variant struct{ full, wantFull bool }
	payloads := map[variant][]byte{}
	sends := make([]outgoing, 0, len(nodes))
	for _, n := range nodes {
		h := l.table.ForPeer(hb, n, l.peers[n])
		l.peers[n] = false
		v := variant{h.Full, h.WantFull}
		if payloads[v] == nil {
			payloads[v] = transport.AppendNodeHeartbeat(nil, h)
		}
		sends = append(sends, outgoing{to: n, payload: payloads[v]})
	}
	return sends
}
