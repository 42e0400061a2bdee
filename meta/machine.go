package meta

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"google.golang.org/protobuf/proto"
)

// FormatVersion is State.format_version as this code writes it.
const FormatVersion = 1

// Limits every node applies identically: they are part of the rules of
// Apply, not node configuration, since a limit that differed between nodes
// would make them disagree on which commands were refused. Stricter
// per-node limits (cluster.Config.PartitionsMax) are checked by the meta
// leader before it proposes.
const (
	// PartitionsPerTopicMax bounds one topic's partitions.
	PartitionsPerTopicMax = 10_000
	// PartitionsMax bounds the partitions of the whole cluster.
	PartitionsMax = 1 << 20
	// ReplicasMax bounds one partition's replica set.
	ReplicasMax = 16
	// BrokersMax bounds the brokers ever registered (removed ones count).
	BrokersMax = 1024
	// ProducerIDsPerAllocationMax bounds one AllocateProducerIDs.
	ProducerIDsPerAllocationMax = 1_000_000
	// AddressBytesMax bounds a broker address and its rack label.
	AddressBytesMax = 255
	// ListenersMax bounds the Kafka listeners a broker registers.
	ListenersMax = 16
	// PreferredLeadersMax bounds one SetPreferredLeaders.
	PreferredLeadersMax = 100_000
)

// Machine is the metadata group's state machine. Apply is a pure function of
// the state and the command: every node that applies the same entries in
// the same order holds the same State, byte for byte (Snapshot). A Machine
// is not safe for concurrent use; its owner (the meta group's apply loop)
// serialises calls.
type Machine struct {
	state *metav1.State
	// index is derived from state and rebuilt when topics come and go.
	index stateIndex
}

// stateIndex finds topics by id and partitions by group id without a scan.
type stateIndex struct {
	topicIDs map[[16]byte]*metav1.Topic
	groups   map[uint64]groupRef
	// partitions counts the partitions of every topic.
	partitions int
}

type groupRef struct {
	topic     *metav1.Topic
	partition *metav1.Partition
}

// New returns a machine holding st, which it checks (as Restore does) and
// then owns.
func New(st *metav1.State) (*Machine, error) {
	if err := CheckState(st); err != nil {
		return nil, err
	}
	m := &Machine{state: st}
	m.reindex()
	return m, nil
}

func (m *Machine) reindex() {
	ix := stateIndex{topicIDs: map[[16]byte]*metav1.Topic{}, groups: map[uint64]groupRef{}}
	for _, t := range m.state.Topics {
		ix.topicIDs[[16]byte(t.Id)] = t
		for _, p := range t.Partitions {
			ix.groups[p.GroupId] = groupRef{t, p}
		}
		ix.partitions += len(t.Partitions)
	}
	m.index = ix
}

// Apply applies the entry at index: a command, or nil for Raft's own
// entries (a leader's empty entry, a configuration change), which only
// advance the applied index. A refused command changes nothing but the
// applied index, and every node refuses it with the same Result. An index at
// or below the applied index (an entry delivered again) is refused with
// ERROR_CODE_ALREADY_APPLIED and changes nothing at all.
func (m *Machine) Apply(index uint64, cmd *metav1.Command) *metav1.Result {
	if index <= m.state.AppliedIndex {
		return refusalResult(refuse(metav1.ErrorCode_ERROR_CODE_ALREADY_APPLIED,
			"entry %d is at or below the applied index %d", index, m.state.AppliedIndex))
	}
	m.state.AppliedIndex = index
	if cmd == nil {
		return &metav1.Result{}
	}
	res, err := m.dispatch(index, cmd)
	if err != nil {
		return refusalResult(err)
	}
	return res
}

func refusalResult(r *refusal) *metav1.Result {
	return &metav1.Result{Code: r.code, Message: r.message}
}

// dispatch runs one command's handler. Each handler checks everything before
// it changes anything, so a refusal leaves the state as it was.
func (m *Machine) dispatch(index uint64, cmd *metav1.Command) (*metav1.Result, *refusal) {
	switch c := cmd.Command.(type) {
	case *metav1.Command_RegisterBroker:
		return m.registerBroker(c.RegisterBroker)
	case *metav1.Command_SetBrokerState:
		return m.setBrokerState(c.SetBrokerState)
	case *metav1.Command_CreateTopic:
		return m.createTopic(c.CreateTopic)
	case *metav1.Command_DeleteTopic:
		return m.deleteTopic(c.DeleteTopic)
	case *metav1.Command_CreatePartitions:
		return m.createPartitions(c.CreatePartitions)
	case *metav1.Command_SetTopicConfigs:
		return m.setTopicConfigs(c.SetTopicConfigs)
	case *metav1.Command_AllocateProducerIds:
		return m.allocateProducerIDs(c.AllocateProducerIds)
	case *metav1.Command_BeginReassignment:
		return m.beginReassignment(index, c.BeginReassignment)
	case *metav1.Command_CompleteReassignment:
		return m.completeReassignment(c.CompleteReassignment)
	case *metav1.Command_CancelReassignment:
		return m.cancelReassignment(c.CancelReassignment)
	case *metav1.Command_SetPreferredLeaders:
		return m.setPreferredLeaders(c.SetPreferredLeaders)
	case *metav1.Command_UpsertScramCredential:
		return m.upsertScramCredential(c.UpsertScramCredential)
	case *metav1.Command_DeleteScramCredential:
		return m.deleteScramCredential(c.DeleteScramCredential)
	case *metav1.Command_CreateAcls:
		return m.createACLs(c.CreateAcls)
	case *metav1.Command_DeleteAcls:
		return m.deleteACLs(c.DeleteAcls)
	case *metav1.Command_AlterClientQuotas:
		return m.alterClientQuotas(c.AlterClientQuotas)
	default:
		// No command set, or one a newer version wrote: every node of this
		// version refuses it alike.
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_COMMAND, "no known command in the entry")
	}
}

// marshalOptions makes Snapshot's bytes a function of the state alone: map
// entries (topic configs) are written in key order.
var marshalOptions = proto.MarshalOptions{Deterministic: true}

// Snapshot is the state marshalled deterministically: equal states give
// equal bytes.
func (m *Machine) Snapshot() ([]byte, error) {
	data, err := marshalOptions.Marshal(m.state)
	if err != nil {
		return nil, fmt.Errorf("marshal meta state: %w", err)
	}
	return data, nil
}

// Restore replaces the state by a snapshot's, after checking it as a whole
// (CheckState); a snapshot that fails leaves the machine as it was.
func (m *Machine) Restore(data []byte) error {
	st, err := UnmarshalState(data)
	if err != nil {
		return err
	}
	m.state = st
	m.reindex()
	return nil
}

// UnmarshalState decodes and checks a snapshot.
func UnmarshalState(data []byte) (*metav1.State, error) {
	st := &metav1.State{}
	if err := proto.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("decode meta state: %w", err)
	}
	if err := CheckState(st); err != nil {
		return nil, err
	}
	return st, nil
}

// EncodeCommand is a command as the meta log stores it.
func EncodeCommand(cmd *metav1.Command) ([]byte, error) {
	data, err := marshalOptions.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("marshal meta command: %w", err)
	}
	return data, nil
}

// DecodeCommand decodes a command of the meta log. Bytes that do not decode
// are an error (the log is damaged); a command this version does not know
// decodes and is refused by Apply.
func DecodeCommand(data []byte) (*metav1.Command, error) {
	cmd := &metav1.Command{}
	if err := proto.Unmarshal(data, cmd); err != nil {
		return nil, fmt.Errorf("decode meta command: %w", err)
	}
	return cmd, nil
}

// findTopic is the live topic named name, with its position in the sorted
// topic list (where it would go when absent).
func (m *Machine) findTopic(name string) (*metav1.Topic, int, bool) {
	i, ok := slices.BinarySearchFunc(m.state.Topics, name, func(t *metav1.Topic, name string) int {
		return strings.Compare(t.Name, name)
	})
	if !ok {
		return nil, i, false
	}
	return m.state.Topics[i], i, true
}

// findBroker is the broker with nodeID, with its position in the sorted
// broker list (where it would go when absent).
func (m *Machine) findBroker(nodeID int32) (*metav1.Broker, int, bool) {
	i, ok := slices.BinarySearchFunc(m.state.Brokers, nodeID, func(b *metav1.Broker, id int32) int {
		return cmp.Compare(b.NodeId, id)
	})
	if !ok {
		return nil, i, false
	}
	return m.state.Brokers[i], i, true
}
