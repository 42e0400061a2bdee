package integration

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cairnlog/cairn/internal/netshape"
)

// faultKind is one fault the nemesis puts on a node.
type faultKind int

const (
	faultKill         faultKind = iota // SIGKILL, restarted when it ends
	faultPause                         // SIGSTOP, SIGCONT when it ends; longer than the election timeout
	faultBlackhole                     // the node's proxy holds both directions
	faultBlackholeIn                   // the node's proxy holds what goes to the node
	faultBlackholeOut                  // the node's proxy holds what the node sends back
	faultDelay                         // the node's proxy delays both directions, with jitter
	faultReset                         // the node's proxy resets every connection while set
	faultDrop                          // the node's proxy loses chunks at random, each loss a cut connection
	faultLink                          // the link between node and peer holds both directions
	faultRing                          // each node keeps only its two neighbours in ring (5 nodes)
	faultBridge                        // ring[0] alone links two sides (5 nodes): see nemesisFault.sides
	faultKinds                         // the number of kinds
)

func (k faultKind) String() string {
	return [...]string{"kill", "pause", "blackhole", "blackhole-in", "blackhole-out", "delay", "reset", "drop",
		"link", "ring", "bridge"}[k]
}

// network is whether the fault is on the links rather than a process.
func (k faultKind) network() bool { return k >= faultBlackhole }

// shape is whether the fault cuts links among every node.
func (k faultKind) shape() bool { return k == faultRing || k == faultBridge }

// Bounds of a schedule: how long a fault lasts and the quiet between two
// on one lane. A pause outlasts the election timeout (at most 1.2 s).
const (
	faultLastsMin     = time.Second
	faultLastsMax     = 5 * time.Second
	pauseLastsMin     = 2 * time.Second
	faultGapMin       = 500 * time.Millisecond
	faultGapMax       = 3 * time.Second
	faultDelayMax     = 150 * time.Millisecond
	faultJitterMax    = 150 * time.Millisecond
	faultDropMax      = 0.2 // chance a chunk is lost
	scheduleFaultsMax = 1000
)

// nemesisFault is one fault of a schedule, from start to end after the
// schedule began.
type nemesisFault struct {
	kind        faultKind
	node        int                  // index into the nodes, 0-based
	peer        int                  // faultLink: the other end
	ring        [nemesisNodesMax]int // faultRing: the order; faultBridge: the bridge, then side a, then side b (halves of the rest)
	start, end  time.Duration
	delay       time.Duration // faultDelay: fixed part
	jitter      time.Duration // faultDelay: random part
	probability float64       // faultDrop: chance a chunk is lost
}

// nemesisNodesMax is the most nodes a nemesis runs.
const nemesisNodesMax = 5

func (f nemesisFault) String() string {
	s := fmt.Sprintf("%s node %d %s..%s", f.kind, f.node+1, f.start.Round(time.Millisecond), f.end.Round(time.Millisecond))
	switch f.kind {
	case faultLink:
		s = fmt.Sprintf("link %d-%d %s..%s", f.node+1, f.peer+1, f.start.Round(time.Millisecond), f.end.Round(time.Millisecond))
	case faultRing, faultBridge:
		s = fmt.Sprintf("%s %v %s..%s", f.kind, f.ring, f.start.Round(time.Millisecond), f.end.Round(time.Millisecond))
	case faultDelay:
		s += fmt.Sprintf(" (%s + up to %s)", f.delay.Round(time.Millisecond), f.jitter.Round(time.Millisecond))
	case faultDrop:
		s += fmt.Sprintf(" (p %.3f)", f.probability)
	}
	return s
}

// planNemesis draws a schedule of faults on nodes nodes, all of them ended
// by duration, from seed alone. Faults come on (nodes-1)/2 lanes, one at a
// time on each; faults that overlap take different nodes (occupies), so no
// two set one link or process, and each is placed only where, with the
// faults on at its start, some running node still has working links to a
// majority (connectedMajority): the cluster can always make progress.
//
// Between every pair of nodes there is a proxy of its own (the lower id
// dials the higher through it, --peer-dial-addr), so a fault can cut one
// node off (its links), one link, or shape the network into a ring or a
// bridge (5 nodes; at 3 both are one cut link).
func planNemesis(seed uint64, nodes int, duration time.Duration) []nemesisFault {
	r := rand.New(rand.NewPCG(seed, seed^0x5deece66d))
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(r.Int64N(int64(hi-lo)+1)) }
	var faults []nemesisFault
	for range max((nodes-1)/2, 1) {
		at := between(0, faultGapMax)
		for len(faults) < scheduleFaultsMax {
			f := nemesisFault{kind: faultKind(r.IntN(int(faultKinds)))}
			if f.kind.shape() && nodes < 4 {
				f.kind = faultLink
			}
			lo := faultLastsMin
			if f.kind == faultPause {
				lo = pauseLastsMin
			}
			f.start, f.end = at, at+between(lo, faultLastsMax)
			if f.end > duration {
				break
			}
			faults = append(faults, f)
			at = f.end + between(faultGapMin, faultGapMax)
		}
	}
	slices.SortStableFunc(faults, func(a, b nemesisFault) int { return cmp.Compare(a.start, b.start) })
	var planned []nemesisFault
	for _, f := range faults {
		var active []nemesisFault
		busy := map[int]bool{}
		for _, o := range planned {
			if o.start < f.end && f.start < o.end {
				active = append(active, o)
				for _, n := range o.occupies(nodes) {
					busy[n] = true
				}
			}
		}
		candidates := placements(r, f, nodes, busy)
		r.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
		for _, c := range candidates {
			if connectedMajority(nodes, append(slices.Clone(active), c)) {
				switch c.kind {
				case faultDelay:
					c.delay, c.jitter = between(time.Millisecond, faultDelayMax), between(0, faultJitterMax)
				case faultDrop:
					c.probability = r.Float64() * faultDropMax
				}
				planned = append(planned, c)
				break
			}
		}
	}
	return planned
}

// placements lists where f can go among the nodes not busy.
func placements(r *rand.Rand, f nemesisFault, nodes int, busy map[int]bool) []nemesisFault {
	var out []nemesisFault
	switch {
	case f.kind.shape():
		if len(busy) > 0 {
			return nil
		}
		for i, n := range r.Perm(nodes) {
			f.ring[i] = n
		}
		out = append(out, f)
	case f.kind == faultLink:
		for a := range nodes {
			for b := a + 1; b < nodes; b++ {
				if !busy[a] && !busy[b] {
					f.node, f.peer = a, b
					out = append(out, f)
				}
			}
		}
	default:
		for n := range nodes {
			if !busy[n] {
				f.node = n
				out = append(out, f)
			}
		}
	}
	return out
}

// occupies returns the nodes f takes while it is on.
func (f nemesisFault) occupies(nodes int) []int {
	switch {
	case f.kind == faultLink:
		return []int{f.node, f.peer}
	case f.kind.shape():
		all := make([]int, nodes)
		for i := range all {
			all[i] = i
		}
		return all
	default:
		return []int{f.node}
	}
}

// cuts returns the one-way links (node indices) f acts on: cut, or slowed
// and lossy for a delay or a drop, reset for a reset.
func (f nemesisFault) cuts(nodes int) []netshape.Link {
	all := make([]uint64, nodes)
	for i := range all {
		all[i] = uint64(i)
	}
	node := uint64(f.node)
	var links []netshape.Link
	switch f.kind {
	case faultBlackhole, faultDelay, faultReset, faultDrop:
		links = netshape.Isolate(node, all)
	case faultBlackholeIn, faultBlackholeOut:
		for _, o := range all {
			if o == node {
				continue
			}
			if f.kind == faultBlackholeIn {
				links = append(links, netshape.Link{From: o, To: node})
			} else {
				links = append(links, netshape.Link{From: node, To: o})
			}
		}
	case faultLink:
		links = netshape.Split([]uint64{node}, []uint64{uint64(f.peer)})
	case faultRing:
		links = netshape.Ring(toIDs(f.ring[:nodes]))
	case faultBridge:
		half := 1 + (nodes-1)/2
		bridge := f.ring[0]
		a := toIDs(append([]int{bridge}, f.ring[1:half]...))
		b := toIDs(append([]int{bridge}, f.ring[half:nodes]...))
		links = netshape.Bridge(a, b, uint64(bridge))
	}
	return links
}

func toIDs(nodes []int) []uint64 {
	ids := make([]uint64, len(nodes))
	for i, n := range nodes {
		ids[i] = uint64(n)
	}
	return ids
}

// connectedMajority reports whether, with the faults active on, some
// running node has working links both ways to enough running nodes to
// make a majority with itself. Every network fault counts as cutting the
// links it acts on.
func connectedMajority(nodes int, active []nemesisFault) bool {
	down := map[int]bool{}
	cut := map[netshape.Link]bool{}
	for _, f := range active {
		if !f.kind.network() {
			down[f.node] = true
		}
		for _, l := range f.cuts(nodes) {
			cut[l] = true
		}
	}
	for x := range nodes {
		if down[x] {
			continue
		}
		reach := 1
		for y := range nodes {
			if y != x && !down[y] && !cut[netshape.Link{From: uint64(x), To: uint64(y)}] && !cut[netshape.Link{From: uint64(y), To: uint64(x)}] {
				reach++
			}
		}
		if 2*reach > nodes {
			return true
		}
	}
	return false
}

// nemesisStep is a fault starting or ending.
type nemesisStep struct {
	at    time.Duration
	heal  bool
	fault nemesisFault
}

// nemesisSteps orders the starts and ends of faults in time, an end before
// a start at the same time.
func nemesisSteps(faults []nemesisFault) []nemesisStep {
	var steps []nemesisStep
	for _, f := range faults {
		steps = append(steps, nemesisStep{at: f.start, fault: f}, nemesisStep{at: f.end, heal: true, fault: f})
	}
	slices.SortStableFunc(steps, func(a, b nemesisStep) int {
		if c := cmp.Compare(a.at, b.at); c != 0 {
			return c
		}
		switch {
		case a.heal == b.heal:
			return 0
		case a.heal:
			return -1
		default:
			return 1
		}
	})
	return steps
}

// TestNemesisScheduleKeepsAMajority: over many seeds at 3 and 5 nodes, a
// schedule is the same from the same seed, its faults end by the
// duration, and applying the steps in order always leaves a running node
// linked to a majority, with no node taken by two faults at once; every
// kind of fault is drawn (rings and bridges at 5 nodes only).
func TestNemesisScheduleKeepsAMajority(t *testing.T) {
	const duration = 60 * time.Second
	for _, nodes := range []int{3, 5} {
		kinds := map[faultKind]bool{}
		for seed := range uint64(200) {
			faults := planNemesis(seed, nodes, duration)
			if again := planNemesis(seed, nodes, duration); !slices.Equal(faults, again) {
				t.Fatalf("%d nodes, seed %d: two schedules:\n%v\n%v", nodes, seed, faults, again)
			}
			if len(faults) == 0 {
				t.Fatalf("%d nodes, seed %d: no fault in %s", nodes, seed, duration)
			}
			active := map[nemesisFault]bool{}
			for _, s := range nemesisSteps(faults) {
				f := s.fault
				if f.end > duration || f.start >= f.end {
					t.Fatalf("%d nodes, seed %d: %v", nodes, seed, f)
				}
				if s.heal {
					delete(active, f)
					continue
				}
				taken := map[int]bool{}
				for o := range active {
					for _, n := range o.occupies(nodes) {
						taken[n] = true
					}
				}
				for _, n := range f.occupies(nodes) {
					if taken[n] {
						t.Fatalf("%d nodes, seed %d: node %d taken twice at %s by %v", nodes, seed, n+1, s.at, f)
					}
				}
				active[f] = true
				kinds[f.kind] = true
				if !connectedMajority(nodes, slices.Collect(maps.Keys(active))) {
					t.Fatalf("%d nodes, seed %d: no majority linked at %s: %v", nodes, seed, s.at, slices.Collect(maps.Keys(active)))
				}
			}
		}
		want := int(faultKinds)
		if nodes < 4 {
			want -= 2 // no ring nor bridge
		}
		if len(kinds) != want {
			t.Fatalf("%d nodes: 200 schedules drew only %v", nodes, kinds)
		}
	}
}

// TestConnectedMajority: the check the schedule keeps, on shapes whose
// answer is known.
func TestConnectedMajority(t *testing.T) {
	kill := func(n int) nemesisFault { return nemesisFault{kind: faultKill, node: n} }
	for _, tc := range []struct {
		name   string
		nodes  int
		active []nemesisFault
		want   bool
	}{
		{"nothing", 3, nil, true},
		{"one killed", 3, []nemesisFault{kill(0)}, true},
		{"two killed", 3, []nemesisFault{kill(0), kill(2)}, false},
		{"a link cut", 3, []nemesisFault{{kind: faultLink, node: 0, peer: 2}}, true},
		{"a link cut and its bridge killed", 3, []nemesisFault{{kind: faultLink, node: 0, peer: 2}, kill(1)}, false},
		{"one blackholed one way", 3, []nemesisFault{{kind: faultBlackholeIn, node: 1}}, true},
		{"two blackholed", 3, []nemesisFault{{kind: faultBlackhole, node: 1}, {kind: faultBlackholeOut, node: 2}}, false},
		{"ring of five", 5, []nemesisFault{{kind: faultRing, ring: [5]int{0, 1, 2, 3, 4}}}, true},
		{"ring of five and a kill", 5, []nemesisFault{{kind: faultRing, ring: [5]int{0, 1, 2, 3, 4}}, kill(0)}, true},
		{"ring of five and two kills", 5, []nemesisFault{{kind: faultRing, ring: [5]int{0, 1, 2, 3, 4}}, kill(1), kill(4)}, false},
		{"bridge of five", 5, []nemesisFault{{kind: faultBridge, ring: [5]int{2, 0, 1, 3, 4}}}, true},
		{"bridge of five, bridge killed", 5, []nemesisFault{{kind: faultBridge, ring: [5]int{2, 0, 1, 3, 4}}, kill(2)}, false},
	} {
		if got := connectedMajority(tc.nodes, tc.active); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
