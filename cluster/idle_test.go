package cluster

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cairnlog/cairn/storage/vfs"
	"github.com/cairnlog/cairn/transport"
)

// The idle-cost measurement of a cluster node (design §9, M13) is not part
// of the default run: it takes about a minute and both cores. Run it with
//
//	go test -count=1 -run TestClusterIdleCost -v ./cluster/ -cluster.idle
var (
	idleRun        = flag.Bool("cluster.idle", false, "run TestClusterIdleCost (three nodes, idle partitions, measured)")
	idlePartitions = flag.Int("cluster.idle.partitions", 1000, "partitions (RF 3) TestClusterIdleCost creates")
	idleMeasure    = flag.Duration("cluster.idle.measure", 20*time.Second, "how long TestClusterIdleCost measures")
	idleProfile    = flag.String("cluster.idle.cpuprofile", "", "write a CPU profile of the measured interval to this file")
)

// The gate of the replication issue, per node.
const (
	idleCPUFractionMax = 0.05
	idleRSSBytesMax    = 300 << 20
)

// idleTopics is how many topics share the partitions, so that a topic's
// creation stays a modest metadata command.
const idleTopics = 4

// TestClusterIdleCost starts three cluster nodes in this process, each on
// the operating system's filesystem under its own temporary directory and
// with the default tick and election timeout, creates the partitions with
// RF 3, waits until each has a leader every node agrees on, and then
// measures the idle process: CPU, heap, RSS, goroutines, transport
// traffic and fsyncs, divided by three for the per-node figures. It fails
// when a node costs 5 % of a core or 300 MB of RSS.
func TestClusterIdleCost(t *testing.T) {
	if !*idleRun {
		t.Skip("measurement: run with -cluster.idle")
	}
	tn, syncs := startIdleNodes(t)
	start := time.Now()
	createIdleTopics(t, tn, *idlePartitions)
	t.Logf("created %d partitions x RF 3 in %s", *idlePartitions, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	waitAllLed(t, tn)
	t.Logf("every partition led after %s more", time.Since(start).Round(time.Millisecond))
	time.Sleep(2 * time.Second) // let the elections' last appends and heartbeats settle before measuring
	stopProfile := startIdleProfile(t)
	before := sampleIdle(tn, syncs)
	time.Sleep(*idleMeasure) // the measurement is of time passing with nothing to do
	after := sampleIdle(tn, syncs)
	stopProfile()
	r := idleReport(before, after)
	t.Log(r.String())
	if r.cpuPerNode >= idleCPUFractionMax {
		t.Errorf("idle CPU per node %.1f %% of a core, gate < %.0f %%", 100*r.cpuPerNode, 100*idleCPUFractionMax)
	}
	if r.rssPerNode >= idleRSSBytesMax {
		t.Errorf("RSS per node %d MB, gate < %d MB", r.rssPerNode>>20, idleRSSBytesMax>>20)
	}
}

// startIdleProfile profiles the CPU into -cluster.idle.cpuprofile, when
// set, until the returned function is called.
func startIdleProfile(t *testing.T) (stop func()) {
	if *idleProfile == "" {
		return func() {}
	}
	f, err := os.Create(*idleProfile)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	}
}

// startIdleNodes starts three nodes on temporary directories of the OS
// filesystem, counting their fsyncs, with the default Raft timing.
func startIdleNodes(t *testing.T) (*testNodes, *atomic.Uint64) {
	syncs := new(atomic.Uint64)
	tn := &testNodes{t: t}
	tn.peers, tn.fs, tn.nodes, tn.kafkaPort = map[int32]string{}, map[int32]vfs.FS{}, map[int32]*Cluster{}, map[int32]int{}
	dirs := map[int32]string{}
	for i, addr := range freeLoopbackAddrs(t, 3) {
		id := int32(i + 1)
		tn.peers[id], tn.kafkaPort[id] = addr, 19090+int(id)
		tn.fs[id], dirs[id] = &syncCountingFS{FS: vfs.Default(), syncs: syncs}, t.TempDir()
	}
	type opened struct {
		id  int32
		c   *Cluster
		err error
	}
	results := make(chan opened, 3)
	for id := range tn.peers {
		go func() {
			cfg := tn.config(id)
			cfg.DataDir = dirs[id]
			cfg.RaftTickMs, cfg.RaftElectionTicks = RaftTickMsDefault, RaftElectionTicksDefault
			c, err := Open(testEnv(tn.fs[id]), cfg)
			results <- opened{id, c, err}
		}()
	}
	for range 3 {
		r := <-results
		if r.err != nil {
			t.Errorf("node %d: %v", r.id, r.err)
			continue
		}
		tn.nodes[r.id] = r.c
	}
	t.Cleanup(func() {
		for id := range tn.nodes {
			tn.stop(id)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	return tn, syncs
}

// createIdleTopics creates partitions, RF 3, over idleTopics topics.
func createIdleTopics(t *testing.T, tn *testNodes, partitions int) {
	via := tn.nodes[tn.controller()]
	for i := range idleTopics {
		n := partitions / idleTopics
		if i < partitions%idleTopics {
			n++
		}
		if _, err := via.CreateTopicReplicated(fmt.Sprintf("idle-%d", i), int32(n), 3, nil, false); err != nil {
			t.Fatal(err)
		}
	}
}

// waitAllLed waits until every node names the same leader of every
// partition.
func waitAllLed(t *testing.T, tn *testNodes) {
	deadline := time.Now().Add(3 * nodeWaitMax)
	for i := range idleTopics {
		topic := fmt.Sprintf("idle-%d", i)
		top, ok := tn.nodes[1].Topic(topic)
		if !ok {
			t.Fatalf("node 1 does not list %s", topic)
		}
		for p := range int32(len(top.Partitions)) {
			for !agreedLeader(tn, topic, p) {
				if time.Now().After(deadline) {
					t.Fatalf("%s-%d has no leader every node agrees on", topic, p)
				}
				time.Sleep(5 * time.Millisecond) // polling three nodes' views
			}
		}
	}
}

func agreedLeader(tn *testNodes, topic string, index int32) bool {
	lead := int32(-1)
	for id, c := range tn.nodes {
		l, err := c.Leader(topic, index)
		if err != nil || l.Node < 1 || (lead != -1 && l.Node != lead) || l.Local != (l.Node == id) {
			return false
		}
		lead = l.Node
	}
	return true
}

// idleSample is the process's counters at one instant.
type idleSample struct {
	at         time.Time
	cpu        time.Duration // user + system
	rssBytes   int64
	heapBytes  uint64
	goroutines int
	transport  transport.Metrics // summed over the nodes
	syncs      uint64
	ticks      uint64 // scheduler ticks, summed
}

func sampleIdle(tn *testNodes, syncs *atomic.Uint64) idleSample {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru) // cannot fail for RUSAGE_SELF
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := idleSample{at: time.Now(), cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), rssBytes: rssBytes(),
		heapBytes: ms.HeapInuse, goroutines: runtime.NumGoroutine(), syncs: syncs.Load()}
	for _, c := range tn.nodes {
		m := c.node.tcp.Metrics()
		s.transport.FramesSent += m.FramesSent
		s.transport.BytesSent += m.BytesSent
		s.transport.MessagesSent += m.MessagesSent
		s.transport.MessagesDropped += m.MessagesDropped
		s.ticks += c.sched.Ticks()
	}
	return s
}

// rssBytes reads the process's resident set from /proc (0 elsewhere).
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// idleFigures are the measurement, per node unless named otherwise.
type idleFigures struct {
	seconds                               float64
	cpuPerNode                            float64 // fraction of one core
	rssPerNode, heapPerNode               int64
	goroutinesPerNode                     int
	framesPerSecond, bytesPerSecond       float64 // sent, per node
	messagesPerSecond, droppedPerSecond   float64
	syncsPerSecond, groupTicksPerInterval float64
}

func idleReport(a, b idleSample) idleFigures {
	sec := b.at.Sub(a.at).Seconds()
	per := func(x, y uint64) float64 { return float64(y-x) / sec / 3 }
	return idleFigures{seconds: sec,
		cpuPerNode: (b.cpu - a.cpu).Seconds() / sec / 3,
		rssPerNode: b.rssBytes / 3, heapPerNode: int64(b.heapBytes) / 3, goroutinesPerNode: b.goroutines / 3,
		framesPerSecond: per(a.transport.FramesSent, b.transport.FramesSent), bytesPerSecond: per(a.transport.BytesSent, b.transport.BytesSent),
		messagesPerSecond: per(a.transport.MessagesSent, b.transport.MessagesSent), droppedPerSecond: per(a.transport.MessagesDropped, b.transport.MessagesDropped),
		syncsPerSecond: per(a.syncs, b.syncs), groupTicksPerInterval: per(a.ticks, b.ticks),
	}
}

func (f idleFigures) String() string {
	return fmt.Sprintf("idle over %.1f s, per node: CPU %.2f %% of a core, RSS %d MB (process / 3), heap in use %d MB, goroutines %d; "+
		"sent %.0f frames/s, %.0f KB/s, %.0f Raft messages/s, %.1f dropped/s; %.1f fsyncs/s; %.1f scheduler ticks/s",
		f.seconds, 100*f.cpuPerNode, f.rssPerNode>>20, f.heapPerNode>>20, f.goroutinesPerNode,
		f.framesPerSecond, f.bytesPerSecond/1024, f.messagesPerSecond, f.droppedPerSecond, f.syncsPerSecond, f.groupTicksPerInterval)
}

// syncCountingFS counts the fsyncs of files and directories.
type syncCountingFS struct {
	vfs.FS
	syncs *atomic.Uint64
}

func (f *syncCountingFS) Create(name string) (vfs.File, error) { return f.wrap(f.FS.Create(name)) }
func (f *syncCountingFS) OpenAppend(name string) (vfs.File, error) {
	return f.wrap(f.FS.OpenAppend(name))
}
func (f *syncCountingFS) Lock(name string) (vfs.File, error) { return f.wrap(f.FS.Lock(name)) }
func (f *syncCountingFS) SyncDir(dir string) error {
	f.syncs.Add(1)
	return f.FS.SyncDir(dir)
}

func (f *syncCountingFS) wrap(file vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &syncCountingFile{File: file, syncs: f.syncs}, nil
}

type syncCountingFile struct {
	vfs.File
	syncs *atomic.Uint64
}

func (f *syncCountingFile) Sync() error {
	f.syncs.Add(1)
	return f.File.Sync()
}
