package controller

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cairnlog/cairn/transport"
)

// Probe is a node's side of the cluster probe (design §5.4): a new node
// started with a peer list asks every peer whether it holds a cluster
// before bootstrapping one, since a node whose data directory was wiped
// looks new, and bootstrapping would let it vote under its old identity
// with an empty log. Probe answers the peers' probes for this node and
// collects the answers to its own, and the answers to its NodeJoin. It
// exists before the controller does: peers probe each other while each
// of them is still in Open.
type Probe struct {
	// answer is what this node answers a probe: answerSilent while a node
	// with node.json has not opened its log yet (it does not know which
	// answer is true), then answerForming or answerExists.
	answer atomic.Int32

	mu      sync.Mutex
	send    FrameSender
	answers map[int32]probeAnswer // node → the last answer heard
	changed chan struct{}         // closed and replaced at each answer
	joins   map[uint64]chan forwardResult
	nextID  uint64
}

// probeAnswer is a ClusterProbeResult's status.
type probeAnswer = int32

const (
	// answerSilent: not answered (a node with node.json before its
	// controller opened its log).
	answerSilent probeAnswer = -1
	// answerNew: no cluster yet (no node.json).
	answerNew probeAnswer = 0
	// answerForming: bootstrapped, and nothing past the bootstrap
	// snapshot as far as this node knows.
	answerForming probeAnswer = 1
	// answerExists: the group went past its bootstrap (pastBootstrap: a
	// quorum pre-voted for a later term, or an entry past it), or this
	// node joined it.
	answerExists probeAnswer = 2
)

// NewProbe returns the probe of a node, member when it holds a cluster
// (its identity is not New): a member answers nothing until its
// controller has opened and knows whether the group committed anything.
func NewProbe(member bool) *Probe {
	p := &Probe{answers: map[int32]probeAnswer{}, changed: make(chan struct{}), joins: map[uint64]chan forwardResult{}}
	p.answer.Store(answerNew)
	if member {
		p.answer.Store(answerSilent)
	}
	return p
}

// set raises the answer (it never goes back: a group that committed past
// its bootstrap exists for good). A nil probe does nothing.
func (p *Probe) set(a probeAnswer) {
	if p == nil {
		return
	}
	for {
		old := p.answer.Load()
		if old >= a || p.answer.CompareAndSwap(old, a) {
			return
		}
	}
}

// SetSender gives the probe the transport it answers and asks on, which
// is created after its handlers; until then probes are not answered.
func (p *Probe) SetSender(s FrameSender) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.send = s
}

// Handlers are the probe's frame handlers, for transport.Config.Handlers
// beside FrameHandlers'.
func (p *Probe) Handlers() map[transport.FrameType]transport.FrameHandler {
	return map[transport.FrameType]transport.FrameHandler{
		transport.FrameClusterProbe:       p.handleProbe,
		transport.FrameClusterProbeResult: p.handleProbeResult,
		transport.FrameNodeJoinResult:     p.handleJoinResult,
	}
}

func (p *Probe) sender() FrameSender {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.send
}

// Payloads of the probe frames, big-endian: ClusterProbe is a request id
// (8 bytes); ClusterProbeResult the request id and a status byte: 0 no
// cluster yet, 1 bootstrapped but nothing committed past it, 2 the
// cluster exists.
const probeResultBytes = 9

func (p *Probe) handleProbe(from uint64, payload []byte) {
	s := p.sender()
	if s == nil || len(payload) != proposeHeaderBytes {
		return // the prober asks again
	}
	a := p.answer.Load()
	if a == answerSilent {
		return
	}
	answer := append(append([]byte(nil), payload...), byte(a))
	_ = s.SendFrame(from, transport.FrameClusterProbeResult, answer) // lost: the prober asks again
}

func (p *Probe) handleProbeResult(from uint64, payload []byte) {
	if len(payload) != probeResultBytes || payload[8] > byte(answerExists) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.answers[int32(from)] = probeAnswer(payload[8])
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Probe) handleJoinResult(from uint64, payload []byte) {
	r, err := decodeResult(payload)
	if err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if ch, ok := p.joins[r.requestID]; ok {
		select {
		case ch <- r:
		default:
		}
	}
}

// probeVerdict is what a new node does with the answers heard so far
// from the other peers (peers counts every peer, this node included):
// join when any says the cluster exists (members lists those, by id);
// bootstrap when a quorum, this node counted, answered "no cluster yet"
// or "bootstrapped, nothing committed"; else wait. A wiped node of a
// running cluster hears "exists" from every member that answers. The
// nodes of a new cluster started apart hear "forming" from the first
// ones and bootstrap too: were they to join instead, the first one could
// be left alone among voters that never start, and no leader would ever
// be elected to let them in.
func probeVerdict(answers map[int32]probeAnswer, peers int) (members []int32, bootstrap bool) {
	fresh := 1 // this node
	for node, a := range answers {
		if a == answerExists {
			members = append(members, node)
		} else {
			fresh++
		}
	}
	if len(members) > 0 {
		slices.Sort(members)
		return members, false
	}
	return nil, fresh >= peers/2+1
}

// probePeers asks the other peers whether a cluster exists until the
// verdict is in or ProbeTimeout passes; it returns the peers that hold
// one, none when this node may bootstrap. Once a peer said the cluster
// exists, this node answers "exists" too.
func (c *Controller) probePeers() ([]int32, error) {
	p := c.cfg.Probe
	deadline := c.e.Clock.NewTimer(c.cfg.ProbeTimeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		members, bootstrap := probeVerdict(p.answers, len(c.cfg.Peers))
		changed := p.changed
		p.mu.Unlock()
		if len(members) > 0 {
			// This node is about to rejoin: answered "new" while it waits
			// for a member to register it, a second wiped node could count
			// it towards a quorum of new nodes and bootstrap again.
			p.set(answerExists)
			return members, nil
		}
		if bootstrap {
			return nil, nil
		}
		for node := range c.cfg.Peers {
			if node != c.identity.NodeID {
				// Not connected yet: asked again after the pause.
				_ = c.cfg.Transport.SendFrame(uint64(node), transport.FrameClusterProbe, binary.BigEndian.AppendUint64(nil, 0))
			}
		}
		retry := c.e.Clock.NewTimer(c.cfg.RetryDelay)
		select {
		case <-changed:
		case <-retry.C():
		case <-deadline.C():
			retry.Stop()
			p.mu.Lock()
			heard := maps.Clone(p.answers)
			p.mu.Unlock()
			return nil, fmt.Errorf("controller: no quorum of the peers answered whether a cluster exists within %v (answers %v)", c.cfg.ProbeTimeout, heard)
		}
		retry.Stop()
	}
}

// pastBootstrap reports whether the meta group went past its bootstrap,
// as far as this node's log shows before it re-applies anything: a term
// past the bootstrap's (PreVote is on, so a quorum pre-voted for an
// election), an entry past the bootstrap index, or state applied past it.
// A restarted member whose meta-snapshot file was lost has applied only
// the log's snapshot at Open; answering "forming" until it re-applied its
// log would let a wiped peer bootstrap again.
func (c *Controller) pastBootstrap() (bool, error) {
	hs, _, err := c.log.InitialState()
	if err != nil {
		return false, fmt.Errorf("controller: read the meta log's state: %w", err)
	}
	last, err := c.log.LastIndex()
	if err != nil {
		return false, fmt.Errorf("controller: read the meta log's last index: %w", err)
	}
	return hs.GetTerm() > bootstrapTerm || last > bootstrapIndex || c.applied > bootstrapIndex, nil
}
