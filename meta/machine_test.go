package meta

import (
	"errors"
	"slices"
	"strings"
	"testing"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"google.golang.org/protobuf/proto"
)

type commandCase struct {
	name string
	cmd  *metav1.Command
	code metav1.ErrorCode
	// check looks at the machine after an accepted command.
	check func(t *testing.T, m *Machine, res *metav1.Result)
}

const (
	codeOK                 = metav1.ErrorCode_ERROR_CODE_NONE
	codeInvalidCommand     = metav1.ErrorCode_ERROR_CODE_INVALID_COMMAND
	codeInvalidTopic       = metav1.ErrorCode_ERROR_CODE_INVALID_TOPIC
	codeTopicExists        = metav1.ErrorCode_ERROR_CODE_TOPIC_EXISTS
	codeUnknownTopic       = metav1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC
	codeInvalidConfig      = metav1.ErrorCode_ERROR_CODE_INVALID_CONFIG
	codeInvalidPartitions  = metav1.ErrorCode_ERROR_CODE_INVALID_PARTITIONS
	codeInvalidReplicas    = metav1.ErrorCode_ERROR_CODE_INVALID_REPLICAS
	codeUnknownBroker      = metav1.ErrorCode_ERROR_CODE_UNKNOWN_BROKER
	codeStaleIncarnation   = metav1.ErrorCode_ERROR_CODE_STALE_INCARNATION
	codeInvalidBrokerState = metav1.ErrorCode_ERROR_CODE_INVALID_BROKER_STATE
	codeBrokerInUse        = metav1.ErrorCode_ERROR_CODE_BROKER_IN_USE
	codePolicyViolation    = metav1.ErrorCode_ERROR_CODE_POLICY_VIOLATION
	codeInProgress         = metav1.ErrorCode_ERROR_CODE_REASSIGNMENT_IN_PROGRESS
	codeNoReassignment     = metav1.ErrorCode_ERROR_CODE_NO_REASSIGNMENT

	active   = metav1.BrokerState_BROKER_STATE_ACTIVE
	joining  = metav1.BrokerState_BROKER_STATE_JOINING
	draining = metav1.BrokerState_BROKER_STATE_DRAINING
	removed  = metav1.BrokerState_BROKER_STATE_REMOVED
)

// runCommandCases applies each case's command to a fresh fixture. An
// accepted command passes its check; a refused one gives its code, an error
// wrapping the code's sentinel, and leaves the state as it was but for the
// applied index.
func runCommandCases(t *testing.T, cases []commandCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runCommandCaseOn(t, fixture(t), c) })
	}
}

// runCommandCaseOn applies c's command to m and checks it as runCommandCases does.
func runCommandCaseOn(t *testing.T, m *Machine, c commandCase) {
	t.Helper()
	before := m.State()
	index := before.AppliedIndex + 1
	res := m.Apply(index, c.cmd)
	if res.Code != c.code {
		t.Fatalf("code %s (%s), want %s", res.Code, res.Message, c.code)
	}
	if m.AppliedIndex() != index {
		t.Fatalf("applied index %d, want %d", m.AppliedIndex(), index)
	}
	if err := CheckState(m.State()); err != nil {
		t.Fatalf("state broken: %v", err)
	}
	if c.code != codeOK {
		if !errors.Is(ResultError(res), codeErrors[c.code]) || res.Message == "" {
			t.Fatalf("error %v does not wrap %v or has no message", ResultError(res), codeErrors[c.code])
		}
		if !unchangedBut(before, m.State()) {
			t.Fatalf("a refused command changed the state:\nbefore %v\nafter  %v", before, m.State())
		}
		return
	}
	if c.check != nil {
		c.check(t, m, res)
	}
}

func brokerOf(t *testing.T, m *Machine, node int32) *metav1.Broker {
	t.Helper()
	b, ok := m.Broker(node)
	if !ok {
		t.Fatalf("no broker %d", node)
	}
	return b
}

func wantBroker(node int32, incarnation uint32, state metav1.BrokerState) func(*testing.T, *Machine, *metav1.Result) {
	return func(t *testing.T, m *Machine, res *metav1.Result) {
		b := brokerOf(t, m, node)
		if b.Incarnation != incarnation || b.State != state || res.Incarnation != b.Incarnation && res.Incarnation != 0 {
			t.Fatalf("broker %d: incarnation %d state %s (result %d), want %d %s", node, b.Incarnation, b.State, res.Incarnation, incarnation, state)
		}
	}
}

// TestBrokerCommands: RegisterBroker and SetBrokerState, accepted and each refusal.
func TestBrokerCommands(t *testing.T) {
	long := strings.Repeat("h", AddressBytesMax) + ":1"
	runCommandCases(t, []commandCase{
		{"register a new node at incarnation 1, joining", register(6, 0, "n6:1"), codeOK, wantBroker(6, 1, joining)},
		{"register a known node again: a new incarnation", register(1, 0, "n1:2"), codeOK, wantBroker(1, 2, joining)},
		{"register a removed node again", register(5, 0, "n5:2"), codeOK, wantBroker(5, 2, joining)},
		{"update the addresses of the current incarnation", register(1, 1, "n1:7"), codeOK,
			func(t *testing.T, m *Machine, res *metav1.Result) {
				if b := brokerOf(t, m, 1); b.RaftAddr != "n1:7" || b.State != active || b.Incarnation != 1 {
					t.Fatalf("broker %v", b)
				}
			}},
		{"node id 0", register(0, 0, "n:1"), codeInvalidCommand, nil},
		{"address without a port", register(6, 0, "nohost"), codeInvalidCommand, nil},
		{"address too long", register(6, 0, long), codeInvalidCommand, nil},
		{"rack too long", &metav1.Command{Command: &metav1.Command_RegisterBroker{RegisterBroker: &metav1.RegisterBroker{
			NodeId: 6, Rack: strings.Repeat("r", AddressBytesMax+1)}}}, codeInvalidCommand, nil},
		{"an incarnation of an unknown node", register(9, 3, "n9:1"), codeUnknownBroker, nil},
		{"an incarnation that is not the current one", register(1, 5, "n1:1"), codeStaleIncarnation, nil},
		{"update a removed incarnation", register(5, 1, "n5:1"), codeInvalidBrokerState, nil},

		{"joining to active", brokerState(4, 1, active), codeOK, wantBroker(4, 1, active)},
		{"active to draining", brokerState(1, 1, draining), codeOK, wantBroker(1, 1, draining)},
		{"the state it is in: accepted, nothing changes", brokerState(2, 1, active), codeOK, wantBroker(2, 1, active)},
		{"joining without replicas to removed", brokerState(4, 1, removed), codeOK, wantBroker(4, 1, removed)},
		{"unknown node", brokerState(9, 1, active), codeUnknownBroker, nil},
		{"stale incarnation", brokerState(1, 2, draining), codeStaleIncarnation, nil},
		{"joining to draining", brokerState(4, 1, draining), codeInvalidBrokerState, nil},
		{"removed is final", brokerState(5, 1, active), codeInvalidBrokerState, nil},
		{"no state", brokerState(1, 1, metav1.BrokerState_BROKER_STATE_UNSPECIFIED), codeInvalidBrokerState, nil},
		{"remove a node holding replicas", brokerState(1, 1, removed), codeBrokerInUse, nil},
		{"remove a node only a reassignment targets", brokerState(3, 1, removed), codeBrokerInUse, nil},
	})
}

func topicOf(t *testing.T, m *Machine, name string) *metav1.Topic {
	t.Helper()
	tp, ok := m.Topic(name)
	if !ok {
		t.Fatalf("no topic %s", name)
	}
	return tp
}

// TestTopicCommands: CreateTopic, DeleteTopic, CreatePartitions and
// SetTopicConfigs, accepted and each refusal.
func TestTopicCommands(t *testing.T) {
	many := make([][]uint64, PartitionsPerTopicMax+1)
	for i := range many {
		many[i] = []uint64{r1}
	}
	seventeen := make([]uint64, ReplicasMax+1)
	for i := range seventeen {
		seventeen[i] = ReplicaID(int32(i+1), 1)
	}
	runCommandCases(t, []commandCase{
		{"create: next group ids, first replica preferred", createTopic("logs", topicID(3), nil, []uint64{r2, r1}, []uint64{r3, r2}), codeOK,
			func(t *testing.T, m *Machine, res *metav1.Result) {
				tp := topicOf(t, m, "logs")
				if !slices.Equal(res.GroupIds, []uint64{5, 6}) || tp.Partitions[1].GroupId != 6 || tp.Partitions[0].PreferredLeader != r2 {
					t.Fatalf("groups %v, topic %v", res.GroupIds, tp)
				}
				if a, ok := m.Group(6); !ok || a.Topic != "logs" || a.Partition != 1 {
					t.Fatalf("group 6: %+v %v", a, ok)
				}
				if got, ok := m.TopicByID([16]byte(topicID(3))); !ok || got.Name != "logs" {
					t.Fatalf("by id: %v", got)
				}
			}},
		{"invalid name", createTopic("a/b", topicID(3), nil, []uint64{r1}), codeInvalidTopic, nil},
		{"name taken", createTopic("orders", topicID(3), nil, []uint64{r1}), codeTopicExists, nil},
		{"id taken", createTopic("logs", topicID(1), nil, []uint64{r1}), codeTopicExists, nil},
		{"id of 15 bytes", createTopic("logs", topicID(3)[1:], nil, []uint64{r1}), codeInvalidCommand, nil},
		{"id all zero", createTopic("logs", make([]byte, 16), nil, []uint64{r1}), codeInvalidCommand, nil},
		{"unknown config", createTopic("logs", topicID(3), map[string]string{"no.such": "1"}, []uint64{r1}), codeInvalidConfig, nil},
		{"no partitions", createTopic("logs", topicID(3), nil), codeInvalidPartitions, nil},
		{"too many partitions", createTopic("logs", topicID(3), nil, many...), codeInvalidPartitions, nil},
		{"an empty replica set", createTopic("logs", topicID(3), nil, []uint64{}), codeInvalidReplicas, nil},
		{"a node twice", createTopic("logs", topicID(3), nil, []uint64{r1, ReplicaID(1, 2)}), codeInvalidReplicas, nil},
		{"an unregistered node", createTopic("logs", topicID(3), nil, []uint64{r1, ReplicaID(7, 1)}), codeInvalidReplicas, nil},
		{"node id 0", createTopic("logs", topicID(3), nil, []uint64{1}), codeInvalidReplicas, nil},
		{"a stale incarnation", createTopic("logs", topicID(3), nil, []uint64{ReplicaID(1, 2)}), codeInvalidReplicas, nil},
		{"a joining broker", createTopic("logs", topicID(3), nil, []uint64{r4}), codeInvalidReplicas, nil},
		{"a removed broker", createTopic("logs", topicID(3), nil, []uint64{r5}), codeInvalidReplicas, nil},
		{"replica sets of different sizes", createTopic("logs", topicID(3), nil, []uint64{r1, r2}, []uint64{r1}), codeInvalidReplicas, nil},
		{"more replicas than a set may have", createTopic("logs", topicID(3), nil, seventeen), codeInvalidReplicas, nil},

		{"delete", deleteTopic("orders", topicID(1)), codeOK,
			func(t *testing.T, m *Machine, res *metav1.Result) {
				if _, ok := m.Topic("orders"); ok {
					t.Fatal("still there")
				}
				if _, ok := m.Group(1); ok {
					t.Fatal("group 1 still indexed")
				}
				for _, a := range m.PartitionsOfNode(3) {
					if a.Topic == "orders" {
						t.Fatalf("orders still placed: %+v", a)
					}
				}
			}},
		{"delete an unknown topic", deleteTopic("nope", topicID(1)), codeUnknownTopic, nil},
		{"delete with another topic's id", deleteTopic("orders", topicID(2)), codeUnknownTopic, nil},
		{"delete without an id", deleteTopic("orders", nil), codeUnknownTopic, nil},

		{"grow: indexes and group ids continue", createPartitions("orders", topicID(1), []uint64{r1, r2, r3}), codeOK,
			func(t *testing.T, m *Machine, res *metav1.Result) {
				tp := topicOf(t, m, "orders")
				if len(tp.Partitions) != 4 || tp.Partitions[3].Index != 3 || !slices.Equal(res.GroupIds, []uint64{5}) {
					t.Fatalf("groups %v topic %v", res.GroupIds, tp)
				}
			}},
		{"grow an unknown topic", createPartitions("nope", nil, []uint64{r1}), codeUnknownTopic, nil},
		{"grow with another id", createPartitions("orders", topicID(9), []uint64{r1}), codeUnknownTopic, nil},
		{"grow a stream topic", createPartitions("events", nil, []uint64{r1}), codePolicyViolation, nil},
		{"grow by nothing", createPartitions("orders", nil), codeInvalidPartitions, nil},
		{"grow past the bound", createPartitions("orders", nil, many[3:]...), codeInvalidPartitions, nil},
		{"grow onto a joining broker", createPartitions("orders", nil, []uint64{r4}), codeInvalidReplicas, nil},

		{"set configs", setConfigs("orders", map[string]string{"cleanup.policy": "compact"}, false), codeOK,
			func(t *testing.T, m *Machine, res *metav1.Result) {
				if c := topicOf(t, m, "orders").Configs; len(c) != 1 || c["cleanup.policy"] != "compact" {
					t.Fatalf("configs %v", c)
				}
			}},
		{"set configs of an unknown topic", setConfigs("nope", nil, false), codeUnknownTopic, nil},
		{"set an invalid config", setConfigs("orders", map[string]string{"retention.ms": "soon"}, false), codeInvalidConfig, nil},
		{"leave the stream policy without force", setConfigs("events", nil, false), codePolicyViolation, nil},
		{"leave the stream policy with force", setConfigs("events", nil, true), codeOK,
			func(t *testing.T, m *Machine, res *metav1.Result) {
				if c := topicOf(t, m, "events").Configs; len(c) != 0 {
					t.Fatalf("configs %v", c)
				}
			}},
	})
}

// TestProducerAndReassignmentCommands: AllocateProducerIDs, the three
// reassignment commands and SetPreferredLeaders, accepted and each refusal.
func TestProducerAndReassignmentCommands(t *testing.T) {
	orders := func(p int32) *metav1.PartitionRef { return ref("orders", p) }
	partitionOf := func(t *testing.T, m *Machine, p int32) *metav1.Partition {
		return topicOf(t, m, "orders").Partitions[p]
	}
	runCommandCases(t, []commandCase{
		{"allocate: the ids after the fixture's block", allocate(2, 10), codeOK,
			func(t *testing.T, m *Machine, res *metav1.Result) {
				if res.FirstProducerId != ProducerIDBlock || m.State().NextProducerId != ProducerIDBlock+10 {
					t.Fatalf("first %d next %d", res.FirstProducerId, m.State().NextProducerId)
				}
			}},
		{"allocate for an unknown node", allocate(9, 10), codeUnknownBroker, nil},
		{"allocate for a removed node", allocate(5, 10), codeInvalidBrokerState, nil},
		{"allocate no ids", allocate(1, 0), codeInvalidCommand, nil},
		{"allocate too many", allocate(1, ProducerIDsPerAllocationMax+1), codeInvalidCommand, nil},

		{"begin: the entry's index is the id", begin(orders(0), r2, r3), codeOK,
			func(t *testing.T, m *Machine, res *metav1.Result) {
				p := partitionOf(t, m, 0)
				if res.ReassignmentId != m.AppliedIndex() || p.ReassignmentId != res.ReassignmentId || !slices.Equal(p.TargetReplicas, []uint64{r2, r3}) {
					t.Fatalf("result %v partition %v", res, p)
				}
			}},
		{"begin without a partition", begin(nil, r1), codeInvalidCommand, nil},
		{"begin on an unknown topic", begin(ref("nope", 0), r1), codeUnknownTopic, nil},
		{"begin on a partition past the end", begin(orders(3), r1), codeUnknownTopic, nil},
		{"begin on a negative partition", begin(orders(-1), r1), codeUnknownTopic, nil},
		{"begin with another topic's id", begin(&metav1.PartitionRef{Topic: "orders", TopicId: topicID(2)}, r1), codeUnknownTopic, nil},
		{"begin while one runs", begin(orders(2), r1, r2), codeInProgress, nil},
		{"begin to the same set", begin(orders(0), r3, r2, r1), codeInvalidReplicas, nil},
		{"begin onto a joining broker", begin(orders(0), r1, r4), codeInvalidReplicas, nil},
		{"begin onto a node twice", begin(orders(0), r1, ReplicaID(1, 2)), codeInvalidReplicas, nil},

		{"complete: targets become replicas, preferred leader kept", complete(orders(2), fixtureReassignment), codeOK,
			func(t *testing.T, m *Machine, res *metav1.Result) {
				p := partitionOf(t, m, 2)
				if !slices.Equal(p.Replicas, []uint64{r3, r1}) || p.TargetReplicas != nil || p.ReassignmentId != 0 || p.PreferredLeader != r3 {
					t.Fatalf("partition %v", p)
				}
				if !slices.Equal(BootstrapVoters(p), []uint64{r3, r1, r2}) {
					t.Fatalf("bootstrap voters %v after the first move, want the replicas before it", BootstrapVoters(p))
				}
				if as := m.PartitionsOf(r2); len(as) != 3 {
					t.Fatalf("r2 still on %d partitions: %v", len(as), as)
				}
			}},
		{"complete another reassignment", complete(orders(2), fixtureReassignment+1), codeNoReassignment, nil},
		{"complete where none runs", complete(orders(0), fixtureReassignment), codeNoReassignment, nil},
		{"complete reassignment 0", complete(orders(0), 0), codeNoReassignment, nil},
		{"cancel: replicas stay", cancel(orders(2), fixtureReassignment), codeOK,
			func(t *testing.T, m *Machine, res *metav1.Result) {
				p := partitionOf(t, m, 2)
				if !slices.Equal(p.Replicas, []uint64{r3, r1, r2}) || p.TargetReplicas != nil || p.ReassignmentId != 0 {
					t.Fatalf("partition %v", p)
				}
			}},
		{"cancel another reassignment", cancel(orders(2), 1), codeNoReassignment, nil},

		{"set preferred leaders", preferred(orders(0), r2, orders(1), r1), codeOK,
			func(t *testing.T, m *Machine, res *metav1.Result) {
				if partitionOf(t, m, 0).PreferredLeader != r2 || partitionOf(t, m, 1).PreferredLeader != r1 {
					t.Fatalf("orders %v", topicOf(t, m, "orders"))
				}
			}},
		{"no preferred leaders", preferred(), codeInvalidCommand, nil},
		{"a preferred leader that is not a replica: none set", preferred(orders(0), r2, orders(1), r4), codeInvalidReplicas, nil},
		{"a preferred leader of an unknown partition", preferred(orders(0), r2, orders(7), r1), codeUnknownTopic, nil},
	})
}

// TestApplyEntries: Raft's own entries only advance the applied index; an
// entry without a known command is refused; an entry at or below the
// applied index changes nothing at all.
func TestApplyEntries(t *testing.T) {
	m := fixture(t)
	before := m.State()
	next := before.AppliedIndex + 1
	if res := m.Apply(next, nil); res.Code != codeOK || m.AppliedIndex() != next || !unchangedBut(before, m.State()) {
		t.Fatalf("nil entry: %v, applied %d", res, m.AppliedIndex())
	}
	if res := m.Apply(next+1, &metav1.Command{}); res.Code != codeInvalidCommand || m.AppliedIndex() != next+1 {
		t.Fatalf("empty command: %v", res)
	}
	after := m.State()
	res := m.Apply(next+1, createTopic("logs", topicID(3), nil, []uint64{r1}))
	if res.Code != metav1.ErrorCode_ERROR_CODE_ALREADY_APPLIED || !errors.Is(ResultError(res), ErrAlreadyApplied) || !proto.Equal(after, m.State()) {
		t.Fatalf("replayed entry: %v", res)
	}
}

// TestCountersExhausted: the bounds on brokers, incarnations, group ids and
// producer ids refuse with ERROR_CODE_EXHAUSTED instead of wrapping around.
func TestCountersExhausted(t *testing.T) {
	exhausted := metav1.ErrorCode_ERROR_CODE_EXHAUSTED
	m := fixture(t)
	st := m.State()
	st.Brokers[0].Incarnation = IncarnationMax
	st.NextProducerId = 1<<63 - 5
	st.NextGroupId = 1<<64 - 1
	for i := int32(6); len(st.Brokers) < BrokersMax; i++ {
		st.Brokers = append(st.Brokers, &metav1.Broker{NodeId: i, Incarnation: 1, State: joining})
	}
	m, err := New(st)
	if err != nil {
		t.Fatal(err)
	}
	index := st.AppliedIndex
	for _, c := range []*metav1.Command{
		register(1, 0, "n1:1"),
		register(BrokersMax+10, 0, "n:1"),
		allocate(2, 10),
		createTopic("logs", topicID(3), nil, []uint64{r1}),
	} {
		index++
		if res := m.Apply(index, c); res.Code != exhausted {
			t.Errorf("%v: %v, want %s", c, res, exhausted)
		}
	}
}

// TestCompleteMovesThePreferredLeader: a move that takes the preferred
// leader out of the replicas makes the first target preferred.
func TestCompleteMovesThePreferredLeader(t *testing.T) {
	m := fixture(t)
	id := applyNext(t, m, begin(ref("orders", 0), r2, r3)).ReassignmentId
	applyNext(t, m, complete(ref("orders", 0), id))
	if p := topicOf(t, m, "orders").Partitions[0]; !slices.Equal(p.Replicas, []uint64{r2, r3}) || p.PreferredLeader != r2 {
		t.Fatalf("partition %v", p)
	}
}

// TestResultError: an accepted result is no error; a refusal wraps its
// code's sentinel once, with the message; a code from a newer version is
// an error all the same.
func TestResultError(t *testing.T) {
	if err := ResultError(&metav1.Result{}); err != nil {
		t.Fatal(err)
	}
	m := fixture(t)
	res := applyNextRefused(t, m, setConfigs("orders", map[string]string{"retention.ms": "soon"}, false))
	err := ResultError(res)
	if !errors.Is(err, ErrInvalidConfig) || strings.Count(err.Error(), ErrInvalidConfig.Error()) != 1 || !strings.Contains(err.Error(), "soon") {
		t.Fatalf("error %q", err)
	}
	res = applyNextRefused(t, m, setConfigs("events", nil, false))
	if err := ResultError(res); !errors.Is(err, ErrPolicyViolation) || strings.Count(err.Error(), ErrPolicyViolation.Error()) != 1 {
		t.Fatalf("error %q", err)
	}
	if err := ResultError(&metav1.Result{Code: 999, Message: "new"}); err == nil || !strings.Contains(err.Error(), "new") {
		t.Fatalf("unknown code: %v", err)
	}
}

func applyNextRefused(t *testing.T, m *Machine, c *metav1.Command) *metav1.Result {
	t.Helper()
	res := m.Apply(m.AppliedIndex()+1, c)
	if res.Code == codeOK {
		t.Fatalf("%v accepted", c)
	}
	return res
}

// TestMoveKeepsReplicasOnInactiveBrokers: a move may keep a replica on a
// broker that is no longer active (two nodes draining at once), while a
// replica it adds must be on an active one.
func TestMoveKeepsReplicasOnInactiveBrokers(t *testing.T) {
	m := fixture(t)
	applyNext(t, m, brokerState(4, 1, active))
	applyNext(t, m, brokerState(2, 1, draining))
	applyNext(t, m, brokerState(3, 1, draining))
	applyNext(t, m, begin(ref("orders", 0), r1, r2, r4))
	if res := applyNextRefused(t, m, begin(ref("orders", 1), r2, r3, r1, r2)); res.Code != codeInvalidReplicas {
		t.Fatalf("a node twice: %v", res)
	}
	if res := applyNextRefused(t, m, begin(ref("orders", 1), r2, r1, r5)); res.Code != codeInvalidReplicas {
		t.Fatalf("added a removed broker: %v", res)
	}
	applyNext(t, m, brokerState(1, 1, draining))
	if res := applyNextRefused(t, m, begin(ref("events", 0), r2, r3)); res.Code != codeInvalidReplicas {
		t.Fatalf("added a draining broker: %v", res)
	}
}
