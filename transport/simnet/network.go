package simnet

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/internal/netshape"
	"github.com/cairnlog/cairn/transport"
)

// Faults are the network's misbehaviour, applied to every frame sent while
// they are set. Each frame's delay is drawn in [DelayMin, DelayMax], so a
// range wider than zero reorders frames on one link.
type Faults struct {
	DropPercent      int
	DuplicatePercent int
	DelayMin         time.Duration
	DelayMax         time.Duration
}

// Validate refuses percentages outside [0, 100] and inverted or negative
// delays.
func (f Faults) Validate() error {
	if f.DropPercent < 0 || f.DropPercent > 100 || f.DuplicatePercent < 0 || f.DuplicatePercent > 100 {
		return fmt.Errorf("simnet: drop %d%% and duplicate %d%% must be in [0, 100]", f.DropPercent, f.DuplicatePercent)
	}
	if f.DelayMin < 0 || f.DelayMax < f.DelayMin {
		return fmt.Errorf("simnet: delay [%v, %v] is not a range of durations", f.DelayMin, f.DelayMax)
	}
	return nil
}

// Stats counts what the network did with frames (a duplicate counts once
// more in Delivered, Blocked or Lost).
type Stats struct {
	Sent       uint64 // frames accepted from senders
	Dropped    uint64 // dropped by the DropPercent fault
	Duplicated uint64 // sent twice by the DuplicatePercent fault
	Blocked    uint64 // due while their link was cut
	Held       uint64 // held while an end was paused (then counted as delivered, blocked or lost)
	Lost       uint64 // receiver not open, or opened again, when due; or sender closed
	Delivered  uint64 // handed to the receiver
}

// ErrClosed: the network or the endpoint was closed.
var ErrClosed = errors.New("simnet: closed")

// ErrUnreachable: a join found no open endpoint at its address, or the
// way to it cut or paused.
var ErrUnreachable = errors.New("unreachable")

type link struct{ from, to uint64 }

// flight is one copy of a frame on the wire.
type flight struct {
	at   time.Time
	seq  uint64 // send order on its link: ties at one instant keep it
	from *Endpoint
	to   *Endpoint // the receiver open when it was sent
	typ  transport.FrameType
	// group and msgs: a RaftBatch's one group and its marshalled
	// messages; payload: another frame's bytes.
	group   uint64
	msgs    [][]byte
	payload []byte
}

func (f *flight) bytes() int {
	n := len(f.payload)
	for _, m := range f.msgs {
		n += len(m)
	}
	return n
}

type flightHeap []*flight

func (h flightHeap) Len() int { return len(h) }
func (h flightHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	switch {
	case !a.at.Equal(b.at):
		return a.at.Before(b.at)
	case a.from.id != b.from.id:
		return a.from.id < b.from.id
	case a.to.id != b.to.id:
		return a.to.id < b.to.id
	}
	return a.seq < b.seq
}
func (h flightHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *flightHeap) Push(x any)   { *h = append(*h, x.(*flight)) }
func (h *flightHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Network is the simulated network between a cluster's nodes. Safe for
// concurrent use. It has no goroutine of its own: frames arrive when the
// simulation's loop calls DeliverDue, and their handlers run on the
// loop's goroutine, so the loop fixes where in its order of work every
// delivery falls.
type Network struct {
	clock env.Clock
	// delivering is held by DeliverDue, so that two callers never
	// interleave deliveries, and by Close.
	delivering sync.Mutex

	mu     sync.Mutex
	faults Faults
	drop   DropFunc
	// observe, when set, hears of every frame's fate (SetObserver).
	observe Observer
	cut     map[link]bool
	// paused nodes, and the frames held for them or sent by them meanwhile,
	// in the order they were held (Pause).
	paused    map[uint64]bool
	held      []*flight
	endpoints map[uint64]*Endpoint // open ones, by node id
	flights   flightHeap
	// links hold each link's draws and send order: what happens to one
	// link's frames does not depend on when other links send theirs.
	links    map[link]*linkDraws
	linkSeed uint64
	stats    Stats
	closed   bool
}

// New returns a network delivering on e's clock (DeliverDue) and drawing
// its faults from sources seeded from e's Rand, with faults f set.
func New(e env.Env, f Faults) (*Network, error) {
	if err := e.Check(); err != nil {
		return nil, fmt.Errorf("simnet: %w", err)
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	var seed [8]byte
	_, _ = e.Rand.Read(seed[:]) // never fails
	return &Network{clock: e.Clock, faults: f, cut: map[link]bool{}, paused: map[uint64]bool{}, endpoints: map[uint64]*Endpoint{},
		links: map[link]*linkDraws{}, linkSeed: binary.BigEndian.Uint64(seed[:])}, nil
}

// linkDraws is one link's source of fault draws, seeded from the
// network's Rand and the link, and its count of frames sent.
type linkDraws struct {
	rand *env.Rand
	seq  uint64
}

// drawsLocked returns l's draws.
func (n *Network) drawsLocked(l link) *linkDraws {
	d := n.links[l]
	if d == nil {
		// Node ids are below 2^32: each link gets a seed of its own.
		d = &linkDraws{rand: env.NewSeededRand(n.linkSeed ^ (l.from<<32|l.to&(1<<32-1))*0x9e3779b97f4a7c15)}
		n.links[l] = d
	}
	return d
}

// Close stops delivering: frames in flight are lost. Endpoints stay
// usable and lose what they send. It waits for a DeliverDue under way,
// so a handler must not call it.
func (n *Network) Close() {
	n.delivering.Lock()
	defer n.delivering.Unlock()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
}

// deliverRoundsMax bounds how often one DeliverDue looks again for frames
// that its deliveries put in flight due at once (a network with no
// delay), so that two handlers answering each other cannot hold it.
const deliverRoundsMax = 16

// DeliverDue delivers every frame due by the clock's now on the caller's
// goroutine, in delivery order, and then those its deliveries sent that
// are due at once, within a bound; it returns how many it delivered. A
// handler must not wait for the clock or for the caller. After Close it
// delivers nothing.
func (n *Network) DeliverDue() int {
	n.delivering.Lock()
	defer n.delivering.Unlock()
	delivered := 0
	for range deliverRoundsMax {
		due := n.takeDue()
		if len(due) == 0 {
			break
		}
		for _, f := range due {
			n.deliver(f)
		}
		delivered += len(due)
	}
	return delivered
}

// SetFaults changes the faults of frames sent from now on.
func (n *Network) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.faults = f
	return nil
}

// DropFunc picks frames to lose on purpose: true drops the frame of type
// typ sent from one node to another (counted as Dropped). It runs with the
// network locked: it must not call the network.
type DropFunc func(from, to uint64, typ transport.FrameType) bool

// SetDrop makes drop choose, beside the random faults, which frames sent
// from now on are lost (nil: none), for a test aiming at one message.
func (n *Network) SetDrop(drop DropFunc) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.drop = drop
}

// Observer hears of what befalls each frame: event is "send, due in D"
// (D the delay drawn; twice for a duplicated frame), "unconnected" (no
// endpoint of the receiver open, or the network closed: never sent),
// "drop", "hold" (a paused end), "release" (its end resumed: due now),
// and, at its delivery, "deliver", "block" (a cut link), "lose" (an end
// closed meanwhile) or "hold" (the receiver paused meanwhile). It
// runs with the network locked: it must not call the network. Two runs
// of one seed are compared through it.
type Observer func(event string, from, to uint64, typ transport.FrameType)

// SetObserver makes observe hear of every frame from now on (nil: none).
func (n *Network) SetObserver(observe Observer) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.observe = observe
}

// observeLocked tells the observer, if any, of event. Callers hold mu.
func (n *Network) observeLocked(event string, f *flight, to uint64) {
	if n.observe != nil {
		n.observe(event, f.from.id, to, f.typ)
	}
}

// Stats returns the counts so far.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// InFlight returns how many frames are on the wire.
func (n *Network) InFlight() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.flights)
}

// attach makes e the open endpoint of its node.
func (n *Network) attach(e *Endpoint) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	if _, ok := n.endpoints[e.id]; ok {
		n.mu.Unlock()
		return fmt.Errorf("simnet: node %d is already open", e.id)
	}
	n.endpoints[e.id] = e
	others := n.othersLocked(e.id)
	n.mu.Unlock()
	for _, o := range others {
		o.peerChanged(e.id, false)
	}
	return nil
}

func (n *Network) detach(e *Endpoint) {
	n.mu.Lock()
	if n.endpoints[e.id] != e {
		n.mu.Unlock()
		return
	}
	delete(n.endpoints, e.id)
	others := n.othersLocked(e.id)
	n.mu.Unlock()
	for _, o := range others {
		o.peerChanged(e.id, true)
	}
}

// othersLocked lists the open endpoints but node id's.
func (n *Network) othersLocked(id uint64) []*Endpoint {
	var others []*Endpoint
	for oid, o := range n.endpoints {
		if oid != id {
			others = append(others, o)
		}
	}
	return others
}

// open reports whether node id has an open endpoint.
func (n *Network) open(id uint64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.endpoints[id] != nil
}

// post puts f on the wire from node from to node to, with the faults in
// force; false when no endpoint of to is open (f is lost, as to a peer not
// connected).
func (n *Network) post(to uint64, f *flight) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	f.to = n.endpoints[to]
	if n.closed || f.to == nil {
		if n.observe != nil {
			n.observe("unconnected", f.from.id, to, f.typ)
		}
		return false
	}
	n.stats.Sent++
	d := n.drawsLocked(link{f.from.id, to})
	if percent(d.rand, n.faults.DropPercent) || (n.drop != nil && n.drop(f.from.id, to, f.typ)) {
		n.stats.Dropped++
		n.observeLocked("drop", f, to)
		return true // lost on the way: the sender cannot tell
	}
	copies := 1
	if percent(d.rand, n.faults.DuplicatePercent) {
		n.stats.Duplicated++
		copies = 2
	}
	now := n.clock.Now()
	for i := range copies {
		c := f
		if i > 0 {
			dup := *f
			c = &dup
		}
		d.seq++
		c.seq = d.seq
		if n.paused[f.from.id] { // a stopped process sends nothing until it resumes
			n.stats.Held++
			n.held = append(n.held, c)
			n.observeLocked("hold", c, to)
			continue
		}
		c.at = now.Add(n.faults.DelayMin + time.Duration(uint64n(d.rand, uint64(n.faults.DelayMax-n.faults.DelayMin)+1)))
		heap.Push(&n.flights, c)
		if n.observe != nil {
			n.observeLocked(fmt.Sprintf("send, due in %v", c.at.Sub(now)), c, to)
		}
	}
	return true
}

// percent draws whether an event of p percent happens.
func percent(r *env.Rand, p int) bool { return p > 0 && uint64n(r, 100) < uint64(p) }

// uint64n draws from [0, bound) (bound ≥ 1); the modulo's bias is below
// 2^-40 for the bounds used here.
func uint64n(r *env.Rand, bound uint64) uint64 {
	if bound <= 1 {
		return 0
	}
	var b [8]byte
	_, _ = r.Read(b[:]) // never fails
	return binary.BigEndian.Uint64(b[:]) % bound
}

// takeDue takes the frames due now off the wire, in delivery order;
// none once the network is closed.
func (n *Network) takeDue() []*flight {
	n.mu.Lock()
	defer n.mu.Unlock()
	var due []*flight
	for now := n.clock.Now(); !n.closed && len(n.flights) > 0 && !n.flights[0].at.After(now); {
		due = append(due, heap.Pop(&n.flights).(*flight))
	}
	return due
}

// deliver hands f to its receiver unless its link is cut or either end
// was closed since it was sent; the sender hears of a loss on Unreachable.
func (n *Network) deliver(f *flight) {
	n.mu.Lock()
	switch {
	case n.paused[f.to.id]: // delivered late, once it resumes: a stopped process's socket buffers it
		n.stats.Held++
		n.held = append(n.held, f)
		n.observeLocked("hold", f, f.to.id)
		n.mu.Unlock()
		return
	case n.cut[link{f.from.id, f.to.id}]:
		n.stats.Blocked++
		n.observeLocked("block", f, f.to.id)
	case n.endpoints[f.to.id] != f.to || n.endpoints[f.from.id] != f.from:
		n.stats.Lost++
		n.observeLocked("lose", f, f.to.id)
	default:
		n.stats.Delivered++
		n.observeLocked("deliver", f, f.to.id)
		n.mu.Unlock()
		f.from.reached(f.to.id)
		f.to.receive(f)
		return
	}
	n.mu.Unlock()
	f.from.lost(f.to.id, f)
}

// Cut blocks frames from node from to node to (one way) until Heal.
func (n *Network) Cut(from, to uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[link{from, to}] = true
}

// Isolate cuts node id off from every other node of all, both ways.
func (n *Network) Isolate(id uint64, all []uint64) { n.cutAll(netshape.Isolate(id, all)) }

// Split cuts every link between nodes on different sides.
func (n *Network) Split(sides ...[]uint64) { n.cutAll(netshape.Split(sides...)) }

// Ring leaves each node of ring linked only to its two neighbours in that
// order (the last one's neighbour is the first).
func (n *Network) Ring(ring []uint64) { n.cutAll(netshape.Ring(ring)) }

// Bridge splits a from b, except node bridge, which stays linked to both.
func (n *Network) Bridge(a, b []uint64, bridge uint64) { n.cutAll(netshape.Bridge(a, b, bridge)) }

func (n *Network) cutAll(links []netshape.Link) {
	for _, l := range links {
		n.Cut(l.From, l.To)
	}
}

// Pause stops node id as a stopped process is stopped: frames it sends
// and frames due to it are held (not lost, and not reported unreachable)
// until Resume; its peers see it as not connected (PeerConnected, Ping).
// The node's clock is the caller's to freeze.
func (n *Network) Pause(id uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.paused[id] = true
}

// Resume ends node id's pause: the frames held for it or from it whose
// other end is not paused are due at once, each link's in the order sent,
// and then go through the cuts and closes in force as any frame.
func (n *Network) Resume(id uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.paused, id)
	now := n.clock.Now()
	kept := n.held[:0]
	for _, f := range n.held {
		if n.paused[f.from.id] || n.paused[f.to.id] {
			kept = append(kept, f)
			continue
		}
		f.at = now // each link's seq keeps its frames in the order they were sent
		heap.Push(&n.flights, f)
		n.observeLocked("release", f, f.to.id)
	}
	clear(n.held[len(kept):])
	n.held = kept
}

// Paused reports whether node id is paused.
func (n *Network) Paused(id uint64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused[id]
}

// Heal restores every link; frames already blocked stay lost.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cut)
}

// Linked reports whether frames from node from reach node to.
func (n *Network) Linked(from, to uint64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.cut[link{from, to}]
}
