package meta

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cairnlog/cairn/acl"
	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"google.golang.org/protobuf/proto"
)

// commandGenerator draws commands that are accepted often enough to build
// up a state (replicas of brokers that exist, names that recur) and refused
// often enough to exercise every refusal path.
type commandGenerator struct {
	rng *rand.Rand
}

var (
	genTopics  = []string{"a", "b", "c", "d", "e", "bad/name"}
	genConfigs = []map[string]string{
		nil,
		{"cleanup.policy": "stream"},
		{"cleanup.policy": "compact", "retention.ms": "5", "segment.bytes": "4096", "max.message.bytes": "1000"},
		{"retention.bytes": "100", "message.timestamp.type": "LogAppendTime", "min.compaction.lag.ms": "1"},
		{"retention.ms": "never"},
	}
	genStates = []metav1.BrokerState{joining, active, draining, removed, metav1.BrokerState_BROKER_STATE_UNSPECIFIED}
)

func (g *commandGenerator) pick(n int) int { return g.rng.IntN(n) }

// replicas draws a replica set from the state's brokers: mostly from the
// active ones at their current incarnation (valid), else from any broker,
// now and then at a stale incarnation.
func (g *commandGenerator) replicas(st *metav1.State) []uint64 {
	n := 1 + g.pick(3)
	valid := g.pick(5) > 0
	var out []uint64
	for _, i := range g.rng.Perm(len(st.Brokers)) {
		b := st.Brokers[i]
		if valid && b.State != active {
			continue
		}
		inc := b.Incarnation
		if !valid && g.pick(4) == 0 {
			inc++
		}
		out = append(out, ReplicaID(b.NodeId, inc))
		if len(out) == n {
			break
		}
	}
	if len(out) == 0 {
		out = append(out, ReplicaID(1, 1))
	}
	return out
}

// partitionRef names an existing partition most of the time.
func (g *commandGenerator) partitionRef(st *metav1.State) *metav1.PartitionRef {
	if len(st.Topics) > 0 && g.pick(5) > 0 {
		t := st.Topics[g.pick(len(st.Topics))]
		return &metav1.PartitionRef{Topic: t.Name, Partition: int32(g.pick(len(t.Partitions)))}
	}
	return &metav1.PartitionRef{Topic: genTopics[g.pick(len(genTopics))], Partition: int32(g.pick(4)) - 1}
}

// reassignmentID is a running reassignment's id most of the time.
func (g *commandGenerator) reassignmentID(st *metav1.State, r *metav1.PartitionRef) uint64 {
	for _, t := range st.Topics {
		if t.Name == r.Topic && r.Partition >= 0 && int(r.Partition) < len(t.Partitions) && g.pick(4) > 0 {
			return t.Partitions[r.Partition].ReassignmentId
		}
	}
	return uint64(g.pick(20))
}

// broker picks a node id and an incarnation, mostly its current one.
func (g *commandGenerator) broker(st *metav1.State) (int32, uint32) {
	node := int32(g.pick(7))
	for _, b := range st.Brokers {
		if b.NodeId == node && g.pick(3) > 0 {
			return node, b.Incarnation
		}
	}
	return node, uint32(g.pick(3))
}

func (g *commandGenerator) next(st *metav1.State) *metav1.Command {
	node, inc := g.broker(st)
	topic := genTopics[g.pick(len(genTopics))]
	id := topicID(byte(1 + g.pick(8)))
	switch g.pick(16) {
	case 0:
		return register(node, inc, fmt.Sprintf("n%d:%d", node, g.pick(3)))
	case 1:
		if g.pick(2) == 0 {
			return brokerState(node, inc, active)
		}
		return brokerState(node, inc, genStates[g.pick(len(genStates))])
	case 2, 3:
		parts := make([][]uint64, 1+g.pick(4))
		for i := range parts {
			parts[i] = g.replicas(st)
		}
		return createTopic(topic, id, genConfigs[g.pick(len(genConfigs))], parts...)
	case 4:
		for _, t := range st.Topics {
			if t.Name == topic && g.pick(3) > 0 {
				id = t.Id
			}
		}
		return deleteTopic(topic, id)
	case 5:
		return createPartitions(topic, nil, g.replicas(st))
	case 6:
		return setConfigs(topic, genConfigs[g.pick(len(genConfigs))], g.pick(2) == 0)
	case 7:
		return allocate(node, int32(g.pick(3))*ProducerIDBlock)
	case 8:
		return begin(g.partitionRef(st), g.replicas(st)...)
	case 9:
		r := g.partitionRef(st)
		return complete(r, g.reassignmentID(st, r))
	case 10:
		r := g.partitionRef(st)
		return cancel(r, g.reassignmentID(st, r))
	case 12:
		mechanism := []string{"SCRAM-SHA-256", "SCRAM-SHA-512", "SCRAM-SHA-1"}[g.pick(3)]
		return upsert(genUsers[g.pick(len(genUsers))], scramCredential(mechanism, int32(4096*(1+g.pick(4))), byte(g.pick(256))))
	case 13:
		return deleteCredential(genUsers[g.pick(len(genUsers))], []string{"SCRAM-SHA-256", "SCRAM-SHA-512"}[g.pick(2)])
	case 14:
		return createACLs(g.acl())
	case 15:
		return deleteACLs(g.acl())
	default:
		r := g.partitionRef(st)
		return preferred(r, g.replicas(st)[0])
	}
}

// genUsers are the user names the generator draws, one the rules refuse.
var genUsers = []string{"alice", "bob", "carol", "bad\x00name"}

// acl draws a binding from a small set, now and then an invalid one.
func (g *commandGenerator) acl() acl.Binding {
	b := aclBinding([]string{"User:a", "User:b", "User:*"}[g.pick(3)], acl.Operations[g.pick(len(acl.Operations))], genTopics[g.pick(len(genTopics))])
	if g.pick(8) == 0 {
		b.Host = "bad host"
	}
	return b
}

func bootstrapMachine(t *testing.T) *Machine {
	t.Helper()
	st, err := Bootstrap("cluster-d", []*metav1.Broker{{NodeId: 1}, {NodeId: 2}, {NodeId: 3}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(st)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func snapshot(t *testing.T, m *Machine) []byte {
	t.Helper()
	data, err := m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestDeterminism applies one random command sequence to two machines and,
// from a snapshot taken part way, to a third restored from it: after every
// entry the two give equal results and byte-identical snapshots, every
// state keeps the invariants CheckState checks, and the restored machine
// ends byte-identical too. Every kind of command is accepted at least once,
// so the sequence builds real state rather than a string of refusals.
func TestDeterminism(t *testing.T) {
	const entries = 600
	for seed := uint64(1); seed <= 20; seed++ {
		g := &commandGenerator{rng: rand.New(rand.NewPCG(seed, 0))}
		a, b := bootstrapMachine(t), bootstrapMachine(t)
		var restored *Machine
		restoreAt := entries/4 + g.pick(entries/2)
		accepted := map[string]int{}
		for i := 0; i < entries; i++ {
			index := uint64(i + 2)
			cmd := g.next(a.state)
			resA, resB := a.Apply(index, cmd), b.Apply(index, proto.CloneOf(cmd))
			if !proto.Equal(resA, resB) {
				t.Fatalf("seed %d entry %d: results differ: %v / %v", seed, index, resA, resB)
			}
			if restored != nil {
				if resC := restored.Apply(index, proto.CloneOf(cmd)); !proto.Equal(resA, resC) {
					t.Fatalf("seed %d entry %d: restored machine's result differs: %v / %v", seed, index, resA, resC)
				}
			}
			if resA.Code == codeOK {
				accepted[fmt.Sprintf("%T", cmd.Command)]++
			}
			snapA := snapshot(t, a)
			if !bytes.Equal(snapA, snapshot(t, b)) {
				t.Fatalf("seed %d entry %d (%v): snapshots differ", seed, index, cmd)
			}
			if err := CheckState(a.state); err != nil {
				t.Fatalf("seed %d entry %d (%v gave %v): %v", seed, index, cmd, resA, err)
			}
			if i == restoreAt {
				restored = bootstrapMachine(t)
				if err := restored.Restore(snapA); err != nil {
					t.Fatal(err)
				}
			}
		}
		if !bytes.Equal(snapshot(t, a), snapshot(t, restored)) {
			t.Fatalf("seed %d: the machine restored at entry %d ends with another state", seed, restoreAt)
		}
		if len(accepted) != 15 {
			t.Fatalf("seed %d: accepted kinds %v, want all 15", seed, accepted)
		}
	}
}

// TestRestoreRefusesBrokenStates: Restore checks the state it reads and
// keeps the old one when the check fails.
func TestRestoreRefusesBrokenStates(t *testing.T) {
	breaks := map[string]func(st *metav1.State){
		"format version":         func(st *metav1.State) { st.FormatVersion = 2 },
		"no cluster id":          func(st *metav1.State) { st.ClusterId = "" },
		"brokers out of order":   func(st *metav1.State) { st.Brokers[0], st.Brokers[1] = st.Brokers[1], st.Brokers[0] },
		"incarnation 0":          func(st *metav1.State) { st.Brokers[0].Incarnation = 0 },
		"topics out of order":    func(st *metav1.State) { st.Topics[0], st.Topics[1] = st.Topics[1], st.Topics[0] },
		"duplicate topic id":     func(st *metav1.State) { st.Topics[0].Id = st.Topics[1].Id },
		"invalid config":         func(st *metav1.State) { st.Topics[0].Configs = map[string]string{"x": "1"} },
		"group id reused":        func(st *metav1.State) { st.Topics[0].Partitions[0].GroupId = 1 },
		"group id not allocated": func(st *metav1.State) { st.NextGroupId = 2 },
		"partition index":        func(st *metav1.State) { st.Topics[1].Partitions[1].Index = 7 },
		"unknown replica":        func(st *metav1.State) { st.Topics[1].Partitions[0].Replicas[0] = ReplicaID(9, 1) },
		"future incarnation":     func(st *metav1.State) { st.Topics[1].Partitions[0].Replicas[0] = ReplicaID(1, 2) },
		"preferred not replica":  func(st *metav1.State) { st.Topics[1].Partitions[0].PreferredLeader = r4 },
		"targets without an id":  func(st *metav1.State) { st.Topics[1].Partitions[2].ReassignmentId = 0 },
		"reassignment from the future": func(st *metav1.State) {
			st.Topics[1].Partitions[2].ReassignmentId = st.AppliedIndex + 1
		},
	}
	m := fixture(t)
	good := snapshot(t, m)
	for name, brk := range breaks {
		st := m.State()
		brk(st)
		data, err := marshalOptions.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Restore(data); err == nil {
			t.Errorf("%s: restored", name)
		}
		if !bytes.Equal(good, snapshot(t, m)) {
			t.Fatalf("%s: a refused restore changed the state", name)
		}
	}
}
