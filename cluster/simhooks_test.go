package cluster

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cairnlog/cairn/env"
)

// What the whole-cluster simulation offers a client workload written in the
// external test package (simlinear_test.go): the group coordinator and the
// event store import this package, so a workload running them on the
// simulated nodes cannot live in it.

// SimWorkload is a client workload run beside the simulation's writer,
// under the same schedule. Start is called once the writer's topic exists,
// Stop when the faults are off (before the replicas catch up), Check after
// the writer's checks, on the healed and caught-up cluster.
type SimWorkload interface {
	Start(s SimCluster)
	Stop()
	Check(t *testing.T)
}

// SimCluster is a workload's view of the simulated cluster.
type SimCluster struct{ sc *simCluster }

// Running returns the open nodes not paused (a paused process answers no
// client), by node id.
func (s SimCluster) Running() map[int32]*Cluster { return s.sc.running() }

// Clock is the shared simulated clock.
func (s SimCluster) Clock() env.Clock { return s.sc.clock }

// Since is the simulated time elapsed since the run began.
func (s SimCluster) Since() time.Duration { return s.sc.clock.Now().Sub(simStart) }

// Seed is the run's seed.
func (s SimCluster) Seed() uint64 { return s.sc.seed }

// Event adds a line to the run's event log.
func (s SimCluster) Event(format string, args ...any) { s.sc.event(format, args...) }

// CreateTopic creates a replicated topic on the first running node, asking
// again while a forwarded proposal's outcome is unknown (as a Kafka
// client's CreateTopics does), while the clock moves.
func (s SimCluster) CreateTopic(name string, configs map[string]string) error {
	return s.sc.createTopic(name, configs)
}

// OnClose registers f, called with a node just before it is closed (a crash,
// a wipe, the end of the run): what runs on the node stops with it, as in
// a process that dies.
func (s SimCluster) OnClose(f func(c *Cluster)) {
	s.sc.nodesMu.Lock()
	defer s.sc.nodesMu.Unlock()
	s.sc.onClose = append(s.sc.onClose, f)
}

// beforeClose runs the OnClose functions for node c.
func (sc *simCluster) beforeClose(c *Cluster) {
	sc.nodesMu.RLock()
	fs := sc.onClose
	sc.nodesMu.RUnlock()
	for _, f := range fs {
		f(c)
	}
}

// SimElementNames are the schedule's elements drawn by random schedules.
func SimElementNames() []string {
	var out []string
	for _, e := range simElements {
		if e.knownBug == "" {
			out = append(out, e.name)
		}
	}
	return out
}

// RunSimulation runs seed's random schedule (or -sim.element's) with the
// workloads, and the writer's checks, on -sim.nodes nodes.
func RunSimulation(t *testing.T, seed uint64, workloads ...SimWorkload) {
	runSimulation(t, seed, workloads...)
}

// RunFirstSimulation is RunSimulation on three nodes with seed's schedule
// drawn from the elements schedules drew from before rings, bridges and
// nodes joining and leaving (simElementsFirst): a fixed seed chosen then
// keeps its schedule.
func RunFirstSimulation(t *testing.T, seed uint64, workloads ...SimWorkload) {
	runSimulationOf(t, seed, 3, simElements[:simElementsFirst], workloads...)
}

// RunElement runs one named schedule element on seed with the workloads.
func RunElement(t *testing.T, seed uint64, element string, workloads ...SimWorkload) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	runSchedule(t, seed, rng, *simNodes, []simElement{simElementNamed(t, element)}, workloads...)
}

// SimSeed is -sim.seed, 0 when not given.
func SimSeed() uint64 { return *simSeed }
