package sim

import (
	"container/heap"
	"fmt"
	"math/rand/v2"

	"github.com/cairnlog/cairn/internal/netshape"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Faults are the network's misbehaviour, applied to every message sent
// while they are set. Random delays reorder messages on the same link.
type Faults struct {
	DropPercent      int
	DuplicatePercent int
	DelayMinMs       int64
	DelayMaxMs       int64
}

// Validate refuses percentages outside [0, 100] and inverted delays.
func (f Faults) Validate() error {
	if f.DropPercent < 0 || f.DropPercent > 100 || f.DuplicatePercent < 0 || f.DuplicatePercent > 100 {
		return fmt.Errorf("sim faults: percentages %d/%d outside [0, 100]", f.DropPercent, f.DuplicatePercent)
	}
	if f.DelayMinMs < 0 || f.DelayMaxMs < f.DelayMinMs {
		return fmt.Errorf("sim faults: delay [%d, %d] ms", f.DelayMinMs, f.DelayMaxMs)
	}
	return nil
}

// NetStats counts what the network did.
type NetStats struct {
	Sent, Dropped, Duplicated, Blocked, Delivered int
}

type link struct{ from, to uint64 }

// inFlight is one copy of a message on the wire, as bytes: the receiver
// gets its own decoded message, never the sender's (raft must not see a
// message it sent mutated, nor share one between replicas).
type inFlight struct {
	atMs  int64
	seq   uint64 // ties at one instant keep sending order
	to    uint64
	from  uint64
	bytes []byte
}

type flightHeap []inFlight

func (h flightHeap) Len() int { return len(h) }
func (h flightHeap) Less(i, j int) bool {
	if h[i].atMs != h[j].atMs {
		return h[i].atMs < h[j].atMs
	}
	return h[i].seq < h[j].seq
}
func (h flightHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *flightHeap) Push(x any)   { *h = append(*h, x.(inFlight)) }
func (h *flightHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Network is a deterministic message network between replicas: every
// random choice (drop, duplicate, delay) comes from the rand it was given,
// and time is what its caller says it is. Links can be cut one way or
// both; a message is dropped when its link is cut at delivery time.
type Network struct {
	rng     *rand.Rand
	faults  Faults
	cut     map[link]bool
	flights flightHeap
	seq     uint64
	stats   NetStats
}

// NewNetwork returns a reliable network with a delay of 1 ms.
func NewNetwork(rng *rand.Rand) *Network {
	return &Network{rng: rng, faults: Faults{DelayMinMs: 1, DelayMaxMs: 1}, cut: map[link]bool{}}
}

// SetFaults changes the faults of messages sent from now on.
func (n *Network) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	n.faults = f
	return nil
}

// Faults returns the current faults.
func (n *Network) Faults() Faults { return n.faults }

// Stats returns the counts so far.
func (n *Network) Stats() NetStats { return n.stats }

// Send puts m on the wire at nowMs: dropped, or delivered once or twice,
// each copy after its own delay.
func (n *Network) Send(nowMs int64, m *raftpb.Message) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("sim: marshal %s: %w", m.GetType(), err)
	}
	n.stats.Sent++
	if n.percent(n.faults.DropPercent) {
		n.stats.Dropped++
		return nil
	}
	copies := 1
	if n.percent(n.faults.DuplicatePercent) {
		n.stats.Duplicated++
		copies = 2
	}
	for range copies {
		n.seq++
		delay := n.faults.DelayMinMs + n.rng.Int64N(n.faults.DelayMaxMs-n.faults.DelayMinMs+1)
		heap.Push(&n.flights, inFlight{atMs: nowMs + delay, seq: n.seq, to: m.GetTo(), from: m.GetFrom(), bytes: b})
	}
	return nil
}

func (n *Network) percent(p int) bool { return p > 0 && n.rng.IntN(100) < p }

// NextDueMs returns when the next message arrives, if any is in flight.
func (n *Network) NextDueMs() (int64, bool) {
	if len(n.flights) == 0 {
		return 0, false
	}
	return n.flights[0].atMs, true
}

// Deliver takes every message due by nowMs off the wire, in arrival
// order, dropping those whose link is cut.
func (n *Network) Deliver(nowMs int64) ([]*raftpb.Message, error) {
	var out []*raftpb.Message
	for len(n.flights) > 0 && n.flights[0].atMs <= nowMs {
		f := heap.Pop(&n.flights).(inFlight)
		if n.cut[link{f.from, f.to}] {
			n.stats.Blocked++
			continue
		}
		m := &raftpb.Message{}
		if err := proto.Unmarshal(f.bytes, m); err != nil {
			return nil, fmt.Errorf("sim: unmarshal message %d→%d: %w", f.from, f.to, err)
		}
		n.stats.Delivered++
		out = append(out, m)
	}
	return out, nil
}

// Cut blocks messages from one replica to another (one way).
func (n *Network) Cut(from, to uint64) { n.cut[link{from, to}] = true }

// Isolate cuts id off from every other replica, both ways.
func (n *Network) Isolate(id uint64, all []uint64) { n.cutAll(netshape.Isolate(id, all)) }

// Split cuts every link between replicas of different sides.
func (n *Network) Split(sides ...[]uint64) { n.cutAll(netshape.Split(sides...)) }

func (n *Network) cutAll(links []netshape.Link) {
	for _, l := range links {
		n.Cut(l.From, l.To)
	}
}

// Heal restores every link (messages already dropped stay lost).
func (n *Network) Heal() { clear(n.cut) }

// Cuts returns how many one-way links are cut.
func (n *Network) Cuts() int { return len(n.cut) }
