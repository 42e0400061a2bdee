package integration

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
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
	faultKinds                         // the number of kinds
)

func (k faultKind) String() string {
	return [...]string{"kill", "pause", "blackhole", "blackhole-in", "blackhole-out", "delay", "reset", "drop"}[k]
}

// network is whether the fault is on the node's proxy rather than its
// process.
func (k faultKind) network() bool { return k >= faultBlackhole }

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
	node        int // index into the nodes, 0-based
	start, end  time.Duration
	delay       time.Duration // faultDelay: fixed part
	jitter      time.Duration // faultDelay: random part
	probability float64       // faultDrop: chance a chunk is lost
}

func (f nemesisFault) String() string {
	s := fmt.Sprintf("%s node %d %s..%s", f.kind, f.node+1, f.start.Round(time.Millisecond), f.end.Round(time.Millisecond))
	switch f.kind {
	case faultDelay:
		s += fmt.Sprintf(" (%s + up to %s)", f.delay.Round(time.Millisecond), f.jitter.Round(time.Millisecond))
	case faultDrop:
		s += fmt.Sprintf(" (p %.3f)", f.probability)
	}
	return s
}

// planNemesis draws a schedule of faults on nodes nodes, all of them ended
// by duration, from seed alone. At most (nodes-1)/2 faults overlap (one
// lane each), and overlapping faults are on different nodes, so a majority
// of the nodes is always up and, as argued below, connected.
//
// Each node's proxy sits in front of its Raft listener, and of a pair of
// nodes only the lower id dials (package transport), so node k's proxy
// carries its links to the nodes below k and nothing else: node 1's
// carries none, and a fault on node k's proxy cuts k from the lower nodes
// only (the highest node's isolates it). Network faults therefore go to
// nodes 2 and up. A link between two nodes no fault names goes through the
// higher one's proxy, which passes: the unfaulted majority is connected.
func planNemesis(seed uint64, nodes int, duration time.Duration) []nemesisFault {
	r := rand.New(rand.NewPCG(seed, seed^0x5deece66d))
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(r.Int64N(int64(hi-lo)+1)) }
	var faults []nemesisFault
	for range max((nodes-1)/2, 1) {
		at := between(0, faultGapMax)
		for len(faults) < scheduleFaultsMax {
			f := nemesisFault{kind: faultKind(r.IntN(int(faultKinds)))}
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
		busy := map[int]bool{}
		for _, o := range planned {
			if o.start < f.end && f.start < o.end {
				busy[o.node] = true
			}
		}
		var free []int
		for i := range nodes {
			if !busy[i] && (!f.kind.network() || i > 0) {
				free = append(free, i)
			}
		}
		if len(free) == 0 {
			continue
		}
		f.node = free[r.IntN(len(free))]
		switch f.kind {
		case faultDelay:
			f.delay, f.jitter = between(time.Millisecond, faultDelayMax), between(0, faultJitterMax)
		case faultDrop:
			f.probability = r.Float64() * faultDropMax
		}
		planned = append(planned, f)
	}
	return planned
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
// duration, network faults never name node 1 (its proxy carries no link),
// and applying the steps in order never has more than a minority of the
// nodes faulted, nor one node faulted twice.
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
			faulted := map[int]bool{}
			for _, s := range nemesisSteps(faults) {
				f := s.fault
				if f.end > duration || f.start >= f.end || f.kind.network() && f.node == 0 {
					t.Fatalf("%d nodes, seed %d: %v", nodes, seed, f)
				}
				if s.heal {
					delete(faulted, f.node)
					continue
				}
				if faulted[f.node] {
					t.Fatalf("%d nodes, seed %d: node %d faulted twice at %s", nodes, seed, f.node+1, s.at)
				}
				faulted[f.node] = true
				kinds[f.kind] = true
				if 2*len(faulted) >= nodes {
					t.Fatalf("%d nodes, seed %d: %d nodes faulted at %s", nodes, seed, len(faulted), s.at)
				}
			}
		}
		if len(kinds) != int(faultKinds) {
			t.Fatalf("%d nodes: 200 schedules drew only %v", nodes, kinds)
		}
	}
}
