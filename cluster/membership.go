package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/replica"
)

// The operator's calls that move replicas and leaders between nodes: a
// partition's reassignment, its cancellation and the list of those
// running, the transfer of a partition's leadership and the rebalance to
// preferred leaders, and the removal of a node (its replicas moved off,
// then REMOVED). They only propose to the metadata group, or ask a local
// replica; moveLoop and the partitions' leaders do the work.

// Errors of the membership calls; the first three are the metadata
// group's refusals.
var (
	// ErrReassignmentInProgress: the partition is being moved already.
	ErrReassignmentInProgress = meta.ErrReassignmentInProgress
	// ErrNoReassignment: no move of the partition runs.
	ErrNoReassignment = meta.ErrNoReassignment
	// ErrInvalidReplicas: a replica set with a node twice, a node not
	// active, or no change.
	ErrInvalidReplicas = meta.ErrInvalidReplicas
	// ErrNotClustered: the call needs a node of a cluster.
	ErrNotClustered = errors.New("not a node of a cluster (no --peers)")
	// ErrUnknownNode: no active broker has the node id.
	ErrUnknownNode = errors.New("unknown node")
	// ErrElectionNotNeeded: the partition's preferred leader leads it.
	ErrElectionNotNeeded = errors.New("led by its preferred leader already")
	// ErrPreferredLeaderNotAvailable: the preferred leader's node is not
	// an active broker under that incarnation.
	ErrPreferredLeaderNotAvailable = errors.New("preferred leader not available")
)

// Reassignment is a partition's move as the metadata group records it.
type Reassignment struct {
	Topic     string
	Partition int32
	ID        uint64
	Replicas  []int32 // node ids, before the move
	Target    []int32 // node ids, after it
}

// Adding lists the target's nodes not among the replicas.
func (r Reassignment) Adding() []int32 { return minus(r.Target, r.Replicas) }

// Removing lists the replicas' nodes not in the target.
func (r Reassignment) Removing() []int32 { return minus(r.Replicas, r.Target) }

func minus(a, b []int32) []int32 {
	var out []int32
	for _, n := range a {
		if !slices.Contains(b, n) {
			out = append(out, n)
		}
	}
	return out
}

// Reassign starts moving a partition's replicas to nodes (the first one
// preferred leader when the current one leaves), each node under its
// current incarnation; it returns the reassignment's id. The move goes on
// in the background (Reassignments lists it until it completes).
func (c *Cluster) Reassign(ctx context.Context, topic string, index int32, nodes []int32) (uint64, error) {
	if !c.cfg.clustered() {
		return 0, ErrNotClustered
	}
	st := c.ctl.State()
	t, ok := topicNamed(st, topic)
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrUnknownTopic, topic)
	}
	target, err := replicaIDs(st, nodes)
	if err != nil {
		return 0, err
	}
	cmd := &metav1.Command{Command: &metav1.Command_BeginReassignment{BeginReassignment: &metav1.BeginReassignment{
		Partition: &metav1.PartitionRef{Topic: topic, TopicId: t.Id, Partition: index}, TargetReplicas: target}}}
	res, err := c.proposeCtx(ctx, cmd)
	if err != nil {
		return 0, fmt.Errorf("move %s-%d to nodes %v: %w", topic, index, nodes, err)
	}
	return res.ReassignmentId, nil
}

// CancelReassignment stops a partition's move; the group returns to its
// replicas (the leader undoes what it changed, joint or not).
func (c *Cluster) CancelReassignment(ctx context.Context, topic string, index int32) error {
	_, t, err := c.placedTopic(topic, index)
	if err != nil {
		return err
	}
	cmd := &metav1.Command{Command: &metav1.Command_CancelReassignment{CancelReassignment: &metav1.CancelReassignment{
		Partition:      &metav1.PartitionRef{Topic: topic, TopicId: t.Id, Partition: index},
		ReassignmentId: t.Partitions[index].ReassignmentId}}}
	if _, err := c.proposeCtx(ctx, cmd); err != nil {
		return fmt.Errorf("cancel the move of %s-%d: %w", topic, index, err)
	}
	return nil
}

// Reassignments lists the moves running, by topic and partition.
func (c *Cluster) Reassignments() []Reassignment {
	if !c.cfg.clustered() {
		return nil
	}
	var out []Reassignment
	for _, t := range c.ctl.State().Topics {
		for _, p := range t.Partitions {
			if p.ReassignmentId != 0 {
				out = append(out, Reassignment{Topic: t.Name, Partition: p.Index, ID: p.ReassignmentId,
					Replicas: c.replicaNodes(p.Replicas), Target: c.replicaNodes(p.TargetReplicas)})
			}
		}
	}
	slices.SortFunc(out, func(a, b Reassignment) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return int(a.Partition - b.Partition)
	})
	return out
}

// RemoveNode drains a node: it becomes DRAINING (no new replicas), every
// partition with a replica there starts moving off it (meta.PlanRemoveNode),
// and the metadata leader marks it REMOVED once none is left (moveLoop),
// which takes it out of the metadata group's voters (the controller's
// membership round). It returns the moves it started; calling it again
// while they run starts none and is not an error.
func (c *Cluster) RemoveNode(ctx context.Context, nodeID int32) ([]Reassignment, error) {
	if !c.cfg.clustered() {
		return nil, ErrNotClustered
	}
	st := c.ctl.State()
	b, ok := brokerOf(st, nodeID)
	if !ok || b.State == metav1.BrokerState_BROKER_STATE_REMOVED {
		return nil, fmt.Errorf("%w: node %d", ErrUnknownNode, nodeID)
	}
	if b.State == metav1.BrokerState_BROKER_STATE_DRAINING && slices.ContainsFunc(c.Reassignments(), func(r Reassignment) bool {
		return slices.Contains(r.Removing(), nodeID)
	}) {
		return nil, nil // a drain under way: its moves run (moves it lost are planned again once none runs)
	}
	moves, err := meta.PlanRemoveNode(st, nodeID)
	if err != nil {
		return nil, fmt.Errorf("plan the removal of node %d: %w", nodeID, err)
	}
	drain := &metav1.Command{Command: &metav1.Command_SetBrokerState{SetBrokerState: &metav1.SetBrokerState{
		NodeId: nodeID, Incarnation: b.Incarnation, State: metav1.BrokerState_BROKER_STATE_DRAINING}}}
	if _, err := c.proposeCtx(ctx, drain); err != nil {
		return nil, fmt.Errorf("drain node %d: %w", nodeID, err)
	}
	var out []Reassignment
	for _, m := range moves {
		cmd := &metav1.Command{Command: &metav1.Command_BeginReassignment{BeginReassignment: &metav1.BeginReassignment{
			Partition: m.Partition, TargetReplicas: m.Target}}}
		res, err := c.proposeCtx(ctx, cmd)
		if err != nil {
			return out, fmt.Errorf("move %s-%d off node %d: %w", m.Partition.Topic, m.Partition.Partition, nodeID, err)
		}
		out = append(out, Reassignment{Topic: m.Partition.Topic, Partition: m.Partition.Partition, ID: res.ReassignmentId,
			Replicas: c.replicaNodes(m.Replicas), Target: c.replicaNodes(m.Target)})
	}
	c.signalMoves() // a node with nothing to move is removed at once
	return out, nil
}

// ErrNodeNotActive: the node is registered but not ACTIVE yet (JOINING
// until its metadata replica caught up), or DRAINING.
var ErrNodeNotActive = errors.New("node not active")

// SpreadOnto moves a fair share of the partitions' replicas onto node, an
// ACTIVE broker (one that joined: ErrNodeNotActive while it is still
// JOINING), with PlanSpread over the partitions not moving already and
// the ACTIVE brokers, and returns the moves it started (none when the
// node holds its share). Calling it again once they completed starts
// none. The leaders are left to RebalanceLeaders.
func (c *Cluster) SpreadOnto(ctx context.Context, nodeID int32) ([]Reassignment, error) {
	if !c.cfg.clustered() {
		return nil, ErrNotClustered
	}
	st := c.ctl.State()
	b, ok := brokerOf(st, nodeID)
	switch {
	case !ok || b.State == metav1.BrokerState_BROKER_STATE_REMOVED:
		return nil, fmt.Errorf("%w: node %d", ErrUnknownNode, nodeID)
	case b.State != metav1.BrokerState_BROKER_STATE_ACTIVE:
		return nil, fmt.Errorf("%w: node %d is %s", ErrNodeNotActive, nodeID, brokerStateName(b.State))
	}
	var nodes []int32
	for _, b := range st.Brokers {
		if b.State == metav1.BrokerState_BROKER_STATE_ACTIVE {
			nodes = append(nodes, b.NodeId)
		}
	}
	var parts []PartitionReplicas
	for _, t := range st.Topics {
		for _, p := range t.Partitions {
			if p.ReassignmentId == 0 {
				parts = append(parts, PartitionReplicas{Topic: t.Name, Partition: p.Index, Replicas: c.replicaNodes(p.Replicas)})
			}
		}
	}
	var out []Reassignment
	for _, m := range PlanSpread(parts, nodes, nodeID) {
		id, err := c.Reassign(ctx, m.Topic, m.Partition, m.Replicas)
		if err != nil {
			return out, err
		}
		t, _ := topicNamed(st, m.Topic)
		out = append(out, Reassignment{Topic: m.Topic, Partition: m.Partition, ID: id,
			Replicas: c.replicaNodes(t.Partitions[m.Partition].Replicas), Target: m.Replicas})
	}
	return out, nil
}

// NodeState is a broker's state in the metadata group ("ACTIVE",
// "DRAINING", "REMOVED", ...), empty when unknown. A single node is
// ACTIVE.
func (c *Cluster) NodeState(nodeID int32) string {
	if !c.cfg.clustered() {
		return brokerStateName(metav1.BrokerState_BROKER_STATE_ACTIVE)
	}
	if b, ok := brokerOf(c.ctl.State(), nodeID); ok {
		return brokerStateName(b.State)
	}
	return ""
}

func brokerStateName(s metav1.BrokerState) string {
	name := s.String()
	const prefix = "BROKER_STATE_"
	if len(name) > len(prefix) && name[:len(prefix)] == prefix {
		return name[len(prefix):]
	}
	return name
}

// removeDrained marks REMOVED, on the metadata leader, the draining nodes
// no partition has a replica or a move target on any more.
func (c *Cluster) removeDrained(ctx context.Context) error {
	if l := c.ctl.Leadership(); !l.Ready || l.Leader != c.replicaID() {
		return nil
	}
	st := c.ctl.State()
	for _, b := range st.Brokers {
		if b.State != metav1.BrokerState_BROKER_STATE_DRAINING || nodeHolds(st, b.NodeId) {
			continue
		}
		cmd := &metav1.Command{Command: &metav1.Command_SetBrokerState{SetBrokerState: &metav1.SetBrokerState{
			NodeId: b.NodeId, Incarnation: b.Incarnation, State: metav1.BrokerState_BROKER_STATE_REMOVED}}}
		if _, err := c.proposeCtx(ctx, cmd); err != nil {
			return fmt.Errorf("mark node %d removed: %w", b.NodeId, err)
		}
		c.env.Logger.Info("node removed from the cluster", "node", b.NodeId)
	}
	return nil
}

// refillReplaced starts, on the metadata leader, the moves that replace
// a partition's replica of a node's old incarnation by one of its current
// incarnation, once that node is ACTIVE (planRefill): a node whose data
// was lost rejoined under a new incarnation, so its old replicas are
// voters nothing runs any more, and the new ones copy the partition from
// the others (a move, as Reassign's). Partitions moving already wait for
// their move to end, but for a renewal onto the replaced incarnation,
// which can never end: it is cancelled first.
func (c *Cluster) refillReplaced(ctx context.Context) error {
	if l := c.ctl.Leadership(); !l.Ready || l.Leader != c.replicaID() {
		return nil
	}
	st := c.ctl.State()
	for _, t := range st.Topics {
		for _, p := range t.Partitions {
			// A renewal onto the replaced incarnation can never finish,
			// and would keep the refill below off the partition.
			if p.ReassignmentId == 0 || !meta.StaleRenewal(st, p) {
				continue
			}
			cmd := &metav1.Command{Command: &metav1.Command_CancelReassignment{CancelReassignment: &metav1.CancelReassignment{
				Partition: &metav1.PartitionRef{Topic: t.Name, TopicId: t.Id, Partition: p.Index}, ReassignmentId: p.ReassignmentId}}}
			if _, err := c.proposeCtx(ctx, cmd); errors.Is(err, ErrNoReassignment) {
				continue // it completed first
			} else if err != nil {
				return fmt.Errorf("cancel the renewal of %s-%d onto a replaced incarnation: %w", t.Name, p.Index, err)
			}
			c.env.Logger.Info("cancelled a renewal onto a replaced incarnation", "topic", t.Name, "partition", p.Index)
		}
	}
	for _, m := range planRefill(st) {
		cmd := &metav1.Command{Command: &metav1.Command_BeginReassignment{BeginReassignment: &metav1.BeginReassignment{
			Partition: m.Partition, TargetReplicas: m.Target}}}
		_, err := c.proposeCtx(ctx, cmd)
		if errors.Is(err, ErrReassignmentInProgress) {
			continue // proposed in an earlier round, applied since
		}
		if err != nil {
			return fmt.Errorf("refill %s-%d on the current incarnations %v: %w", m.Partition.Topic, m.Partition.Partition, m.Target, err)
		}
		c.env.Logger.Info("refilling a partition's replica of a replaced incarnation", "topic", m.Partition.Topic,
			"partition", m.Partition.Partition, "replicas", m.Replicas, "target", m.Target)
	}
	return nil
}

// planRefill lists the partitions, not moving, with a replica of an
// incarnation older than its node's current one, that node ACTIVE, and
// the target with those replicas at the current incarnation, in the same
// places. Pure.
func planRefill(st *metav1.State) []meta.Move {
	current := map[int32]uint32{}
	for _, b := range st.Brokers {
		if b.State == metav1.BrokerState_BROKER_STATE_ACTIVE {
			current[b.NodeId] = b.Incarnation
		}
	}
	var out []meta.Move
	for _, t := range st.Topics {
		for _, p := range t.Partitions {
			if p.ReassignmentId != 0 {
				continue
			}
			target := slices.Clone(p.Replicas)
			for i, r := range target {
				if inc, ok := current[meta.NodeOf(r)]; ok && inc > meta.IncarnationOf(r) {
					target[i] = meta.ReplicaID(meta.NodeOf(r), inc)
				}
			}
			if !slices.Equal(target, p.Replicas) {
				out = append(out, meta.Move{Partition: &metav1.PartitionRef{Topic: t.Name, TopicId: t.Id, Partition: p.Index},
					Replicas: p.Replicas, Target: target})
			}
		}
	}
	return out
}

// nodeHolds reports whether a partition lists a replica or a move target
// on nodeID.
func nodeHolds(st *metav1.State, nodeID int32) bool {
	for _, t := range st.Topics {
		for _, p := range t.Partitions {
			if slices.ContainsFunc(slices.Concat(p.Replicas, p.TargetReplicas), func(r uint64) bool { return meta.NodeOf(r) == nodeID }) {
				return true
			}
		}
	}
	return false
}

// TransferLeader asks a partition's group to hand its leadership to the
// replica on node, and waits until this node sees it lead or ctx ends;
// on node itself, until it leads ready to serve (its first entry of the
// term applied), so a request this node answers right after is served.
// This node must lead the partition or be node (a follower passes raft's
// request to its leader under the transferee's id, which the transport
// accepts only from the transferee's own node); ErrNotLeader otherwise,
// naming the leader to ask. While node's replica belongs to an earlier
// incarnation of node (a wiped node whose replica a move has yet to
// replace) it waits without asking: raft would hold every proposal for
// an election timeout per request, the move's own among them.
func (c *Cluster) TransferLeader(ctx context.Context, topic string, index int32, node int32) error {
	if _, _, err := c.transferTarget(topic, index, node); err != nil {
		return err
	}
	if l, _ := c.Leader(topic, index); !l.Local && node != c.cfg.NodeID {
		return fmt.Errorf("%w: node %d leads %s-%d: ask it, or node %d", ErrNotLeader, l.Node, topic, index, node)
	}
	// Raft drops the request while no leader is known, and a transfer
	// that timed out (an election timeout) ends: ask again until done,
	// each time of the replica the metadata names then.
	retry := time.Duration(c.cfg.RaftTickMs*int64(c.cfg.RaftElectionTicks)) * time.Millisecond
	for {
		changed := c.LeadersChanged()
		l, err := c.Leader(topic, index)
		led := err == nil && l.Node == node
		if led && (l.Local || node != c.cfg.NodeID) {
			return nil
		}
		group, to, err := c.transferTarget(topic, index, node)
		if err != nil {
			return err
		}
		if to != 0 && !led {
			if err := c.sched.Do(group, func(r *replica.Replica) { r.TransferLeader(to) }); err != nil {
				return fmt.Errorf("%w: %s-%d has no replica on this node to pass the transfer on", ErrNotLeader, topic, index)
			}
		}
		timer := c.env.Clock.NewTimer(retry)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("transfer the leadership of %s-%d to node %d: %w", topic, index, node, ctx.Err())
		case <-changed:
		case <-timer.C():
		}
		timer.Stop()
	}
}

// transferTarget is the group of a partition and the replica on node to
// hand its leadership to: 0 while that replica is of an incarnation node
// no longer runs. ErrInvalidReplicas when node holds no replica of it.
func (c *Cluster) transferTarget(topic string, index int32, node int32) (group, to uint64, err error) {
	st, t, err := c.placedTopic(topic, index)
	if err != nil {
		return 0, 0, err
	}
	p := t.Partitions[index]
	i := slices.IndexFunc(p.Replicas, func(r uint64) bool { return meta.NodeOf(r) == node })
	if i < 0 {
		return 0, 0, fmt.Errorf("%w: node %d holds no replica of %s-%d (replicas on %v)", ErrInvalidReplicas, node, topic, index, c.replicaNodes(p.Replicas))
	}
	to = p.Replicas[i]
	if b, ok := brokerOf(st, node); !ok || b.Incarnation != meta.IncarnationOf(to) {
		to = 0
	}
	return p.GroupId, to, nil
}

// PreferLeader hands a partition this node leads to its preferred
// leader, without waiting: ErrElectionNotNeeded when that is this node,
// ErrPreferredLeaderNotAvailable when its node is not active, ErrNotLeader
// when this node does not lead the partition (its leader must be asked).
func (c *Cluster) PreferLeader(topic string, index int32) error {
	st, t, err := c.placedTopic(topic, index)
	if err != nil {
		return err
	}
	p := t.Partitions[index]
	pref := p.PreferredLeader
	if pref == 0 {
		pref = p.Replicas[0]
	}
	l, err := c.Leader(topic, index)
	switch {
	case err != nil:
		return err
	case !l.Local:
		return fmt.Errorf("%w: node %d leads %s-%d", ErrNotLeader, l.Node, topic, index)
	case c.isSelf(pref):
		return fmt.Errorf("%w: %s-%d", ErrElectionNotNeeded, topic, index)
	}
	if b, ok := brokerOf(st, meta.NodeOf(pref)); !ok || b.State != metav1.BrokerState_BROKER_STATE_ACTIVE || b.Incarnation != meta.IncarnationOf(pref) {
		return fmt.Errorf("%w: %s-%d prefers node %d", ErrPreferredLeaderNotAvailable, topic, index, meta.NodeOf(pref))
	}
	if err := c.sched.Do(p.GroupId, func(r *replica.Replica) { r.TransferLeader(pref) }); err != nil {
		return fmt.Errorf("%w: %s-%d: %v", ErrNotLeader, topic, index, err)
	}
	return nil
}

// RebalanceLeaders transfers the leadership of every partition this node
// holds a replica of that is not led by its preferred leader, while that
// one is the current incarnation of an active broker
// (meta.PlanLeaderTransfers). It does not wait for the transfers; it
// returns how many it asked for. Partitions with no replica here are left
// to the nodes that hold them.
func (c *Cluster) RebalanceLeaders() (int, error) {
	if !c.cfg.clustered() {
		return 0, ErrNotClustered
	}
	st := c.ctl.State()
	leaders := map[uint64]uint64{}
	for _, t := range st.Topics {
		for _, p := range t.Partitions {
			if l := c.leadership(p.GroupId); l.Leader != 0 {
				leaders[p.GroupId] = l.Leader
			}
		}
	}
	n := 0
	for _, tr := range meta.PlanLeaderTransfers(st, leaders) {
		to := tr.To
		if err := c.sched.Do(tr.GroupID, func(r *replica.Replica) { r.TransferLeader(to) }); err == nil {
			n++
		}
	}
	return n, nil
}

// proposeCtx proposes cmd, bounded by ctx, and maps a refusal to an error.
func (c *Cluster) proposeCtx(ctx context.Context, cmd *metav1.Command) (*metav1.Result, error) {
	res, err := c.ctl.Propose(ctx, cmd)
	if err != nil {
		return nil, err
	}
	if err := meta.ResultError(res); err != nil {
		return nil, clusterError(err)
	}
	return res, nil
}

// topicNamed finds a topic of st by name.
func topicNamed(st *metav1.State, name string) (*metav1.Topic, bool) {
	for _, t := range st.Topics {
		if t.Name == name {
			return t, true
		}
	}
	return nil, false
}

// brokerOf finds a node's broker in st.
func brokerOf(st *metav1.State, nodeID int32) (*metav1.Broker, bool) {
	for _, b := range st.Brokers {
		if b.NodeId == nodeID {
			return b, true
		}
	}
	return nil, false
}

// replicaIDs maps node ids to the replica ids of their current
// incarnations; a node not registered, or removed, is ErrUnknownNode.
func replicaIDs(st *metav1.State, nodes []int32) ([]uint64, error) {
	out := make([]uint64, len(nodes))
	for i, n := range nodes {
		b, ok := brokerOf(st, n)
		if !ok || b.State == metav1.BrokerState_BROKER_STATE_REMOVED {
			return nil, fmt.Errorf("%w: node %d", ErrUnknownNode, n)
		}
		out[i] = meta.ReplicaID(n, b.Incarnation)
	}
	return out, nil
}

// placedTopic is the applied state and its topic holding partition
// index, on a cluster node: ErrNotClustered on a single node,
// ErrUnknownTopic when there is no such partition.
func (c *Cluster) placedTopic(topic string, index int32) (*metav1.State, *metav1.Topic, error) {
	if !c.cfg.clustered() {
		return nil, nil, ErrNotClustered
	}
	st := c.ctl.State()
	t, ok := topicNamed(st, topic)
	if !ok || index < 0 || int(index) >= len(t.Partitions) {
		return nil, nil, fmt.Errorf("%w: %s-%d", ErrUnknownTopic, topic, index)
	}
	return st, t, nil
}
