package kafka

// Metadata v0-v12. Brokers are the cluster's nodes that clients can reach
// (a node whose registered Kafka address is unusable is left out, logged);
// this node is among them, at the address it advertises when it registered
// none (a single node). The controller is the metadata group's leader (-1
// when unknown). Each partition reports its leader and leader epoch as this
// node knows them, its replicas (preferred leader first), the replicas in
// sync, and as offline the replicas on nodes clients cannot reach or whose
// copy here failed. A partition with no known leader, or whose leader is
// unreachable or is this node with a failed copy, is reported with
// LEADER_NOT_AVAILABLE and leader -1, as Kafka does, so clients ask again.
// A partition whose leader's node is gone (its process ended, as the
// transport found) has no known leader either. While a partition in the
// answer has no leader but can elect one, or has a leader whose node this
// one just lost its connection to (it may have died, and be found gone a
// moment later), the answer waits for the election or the connection, at
// most leaderWaitMax (1.5 s, leaderwait.go): franz-go asks again only
// after MetadataMinAge (5 s by default), so an answer sent a few
// milliseconds too early would cost its producers seconds. For the same
// reason a leader on another node is named only once that node answered a
// ping (Cluster.ConfirmNode, at most 100 ms; one per node per answer): a
// node killed a moment ago may still look connected here, and one that
// does not answer is waited for as a disconnected one.
// On a single node that is one broker leading every partition, replicas and
// ISR this node alone. Unknown topics are created when the server allows
// auto-creation and the request does (always for v0-v3, which have no flag),
// as Kafka's auto.create.topics.enable does, with the default replication
// factor.
// Topics whose names start with "__" are internal and never auto-created;
// __consumer_offsets is reported IsInternal. Authorized operations are reported as "unknown" (-2147483648).
// With an authorizer, topics without Describe are left out of an all-topics
// answer and answer TOPIC_AUTHORIZATION_FAILED when named (existing or
// not), and auto-creation needs Create on the cluster or the topic.

import (
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/groups"
)

func init() { register(kmsg.Metadata.Int16(), 0, 12, handleMetadata) }

func handleMetadata(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.MetadataRequest)
	changed := s.view.LeadersChanged()
	a := c.access() // the deferred answer below checks with it
	resp, electing := s.metadata(a, c.listener, req)
	if !electing && len(remoteLeaders(resp, s.cluster.NodeID())) == 0 {
		return reply{resp: resp}
	}
	// A partition is between leaders, or led by another node whose
	// liveness is to be confirmed first: wait (bounded, off the read
	// loop) for the election rather than send the client away for its
	// next refresh.
	return reply{wait: func() kmsg.Response {
		lc := leaderCheck{s: s, confirmed: map[int32]bool{}, suspects: map[int32]bool{}}
		resp, electing = lc.answer(req, resp, electing)
		if !electing {
			return resp
		}
		s.awaitLeaders(c.ctx, changed, func() bool {
			lc.recheckSuspects()
			resp, electing = s.metadata(a, c.listener, req)
			resp, electing = lc.answer(req, resp, electing)
			return !electing
		})
		return resp
	}}
}

// leaderCheck confirms, for one Metadata answer, that the other nodes it
// names as leaders are alive (Cluster.ConfirmNode): a node killed a
// moment ago may still look connected here, and a client told of it
// would wait for its next refresh (5 s in franz-go) to learn of the new
// leader. Each node is pinged once per answer, and again while it is a
// suspect at each change of the leaders (its connection came back).
type leaderCheck struct {
	s         *Server
	confirmed map[int32]bool // answered a ping
	suspects  map[int32]bool // did not: taken as disconnected
}

// answer confirms the leaders resp names on other nodes when nothing else
// makes it wait, and reports the answer to wait for any whose node did not
// answer, as for a leader whose connection is down.
func (lc *leaderCheck) answer(req *kmsg.MetadataRequest, resp *kmsg.MetadataResponse, electing bool) (*kmsg.MetadataResponse, bool) {
	if electing {
		return resp, true
	}
	var unconfirmed []int32
	for _, n := range remoteLeaders(resp, lc.s.cluster.NodeID()) {
		if !lc.confirmed[n] && !lc.suspects[n] {
			unconfirmed = append(unconfirmed, n)
		}
	}
	for n, err := range lc.s.confirmNodes(unconfirmed) {
		if err != nil {
			lc.suspects[n] = true
			lc.s.logger.Debug("metadata: a leader's node did not answer a ping; waiting for an election", "node", n, "err", err)
		} else {
			lc.confirmed[n] = true
		}
	}
	for _, n := range remoteLeaders(resp, lc.s.cluster.NodeID()) {
		if lc.suspects[n] {
			return resp, true
		}
	}
	return resp, false
}

// recheckSuspects pings the suspects again: one that answers now (its
// connection came back) is confirmed.
func (lc *leaderCheck) recheckSuspects() {
	nodes := make([]int32, 0, len(lc.suspects))
	for n := range lc.suspects {
		nodes = append(nodes, n)
	}
	for n, err := range lc.s.confirmNodes(nodes) {
		if err == nil {
			delete(lc.suspects, n)
			lc.confirmed[n] = true
		}
	}
}

// confirmNodes pings nodes at once, each within the cluster's bound, and
// returns each node's answer.
func (s *Server) confirmNodes(nodes []int32) map[int32]error {
	out := make(map[int32]error, len(nodes))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.view.ConfirmNode(n)
			mu.Lock()
			out[n] = err
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// remoteLeaders lists, once each, the nodes other than self that resp
// names as a partition's leader.
func remoteLeaders(resp *kmsg.MetadataResponse, self int32) []int32 {
	var out []int32
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.Leader >= 0 && p.Leader != self && !slices.Contains(out, p.Leader) {
				out = append(out, p.Leader)
			}
		}
	}
	return out
}

// metadata answers req as this node knows the cluster now; electing
// reports that some partition in the answer has no leader while an
// election can give it one (a replica here, or a partition led elsewhere).
func (s *Server) metadata(a access, l *listener, req *kmsg.MetadataRequest) (resp *kmsg.MetadataResponse, electing bool) {
	resp = req.ResponseKind().(*kmsg.MetadataResponse)
	endpoints := s.endpoints(l)
	for _, e := range endpoints {
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID, b.Host, b.Port, b.Rack = e.node, e.host, e.port, e.rack
		resp.Brokers = append(resp.Brokers, b)
	}
	reachable := endpointSet(endpoints)
	id := s.cluster.ID()
	resp.ClusterID = &id
	resp.ControllerID = s.view.ControllerID()
	resp.AuthorizedOperations = -2147483648

	allTopics := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if allTopics {
		for _, t := range s.view.Topics() {
			if !a.allowed(acl.OpDescribe, acl.ResourceTopic, t.Name) {
				continue // hidden, as Kafka hides them
			}
			resp.Topics = append(resp.Topics, s.topicMetadata(t, reachable, &electing))
		}
		return resp, electing
	}
	autoCreate := s.cfg.AutoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation)
	for _, rt := range req.Topics {
		resp.Topics = append(resp.Topics, s.requestedTopicMetadata(a, rt, autoCreate, reachable, &electing))
	}
	return resp, electing
}

func (s *Server) requestedTopicMetadata(a access, rt kmsg.MetadataRequestTopic, autoCreate bool, reachable map[int32]bool, electing *bool) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.AuthorizedOperations = -2147483648
	var t *cluster.Topic
	var ok bool
	if rt.Topic == nil {
		t, ok = s.view.TopicByID(rt.TopicID)
		mt.TopicID = rt.TopicID
		if !ok {
			mt.ErrorCode = kerr.UnknownTopicID.Code
			return mt
		}
		if !a.allowed(acl.OpDescribe, acl.ResourceTopic, t.Name) {
			mt.ErrorCode = kerr.TopicAuthorizationFailed.Code
			return mt
		}
		return s.topicMetadata(t, reachable, electing)
	}
	name := *rt.Topic
	mt.Topic = &name
	if !a.allowed(acl.OpDescribe, acl.ResourceTopic, name) {
		// Refused whether it exists or not, so its existence is not told.
		mt.ErrorCode = kerr.TopicAuthorizationFailed.Code
		return mt
	}
	t, ok = s.view.Topic(name)
	if !ok && autoCreate && !a.allowed(acl.OpCreate, acl.ResourceCluster, acl.ClusterName) && !a.allowed(acl.OpCreate, acl.ResourceTopic, name) {
		mt.ErrorCode = kerr.TopicAuthorizationFailed.Code
		return mt
	}
	// Internal topics (such as __consumer_offsets) are created by the broker itself, never by a client's metadata request.
	if !ok && autoCreate && !strings.HasPrefix(name, "__") {
		var err error
		t, err = s.cluster.CreateTopic(name, s.cfg.DefaultPartitions, nil, false)
		if errors.Is(err, cluster.ErrTopicExists) { // created concurrently by another request
			t, ok = s.view.Topic(name)
		} else if err != nil {
			// An invalid name is the client's mistake, answered with
			// its code; only a failure of the server is worth a line.
			if !errors.Is(err, cluster.ErrInvalidTopic) {
				s.logger.Warn("auto-creating topic", "topic", name, "err", err)
			}
			mt.ErrorCode = errorCode(err)
			return mt
		} else {
			ok = true
		}
	}
	if !ok {
		mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
		return mt
	}
	return s.topicMetadata(t, reachable, electing)
}

// topicMetadata describes t's partitions; reachable is the node ids in the
// response's broker list. It sets *electing when a partition has no
// leader now but can get one by election.
func (s *Server) topicMetadata(t *cluster.Topic, reachable map[int32]bool, electing *bool) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := t.Name
	mt.Topic = &name
	mt.TopicID = t.ID
	mt.IsInternal = t.Name == groups.OffsetsTopic
	mt.AuthorizedOperations = -2147483648
	for _, slot := range t.Partitions {
		mp, between := s.partitionMetadata(t.Name, slot, reachable)
		*electing = *electing || between
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// partitionMetadata describes one partition as this node knows it;
// electing reports that it has no leader now (an election is on, or its
// leader's node is gone) while a live copy here or elsewhere can lead it.
func (s *Server) partitionMetadata(topic string, slot *cluster.PartitionSlot, reachable map[int32]bool) (mp kmsg.MetadataResponseTopicPartition, electing bool) {
	self := s.cluster.NodeID()
	localFailed := slot.Partition == nil && !errors.Is(slot.Offline, cluster.ErrNotLeader) ||
		slot.Partition != nil && slot.Partition.Err() != nil
	offline := func(node int32) bool { return !reachable[node] || (node == self && localFailed) }

	replicas := slot.Replicas
	if len(replicas) == 0 {
		// A topic taken offline as a whole keeps no replica list in its
		// slots; its copy here is the one there is to report.
		replicas = []int32{self}
	}
	mp = kmsg.NewMetadataResponseTopicPartition()
	mp.Partition = slot.Index
	mp.Replicas = slices.Clone(replicas)
	mp.ISR = []int32{}
	mp.OfflineReplicas = []int32{}
	for _, r := range replicas {
		if offline(r) {
			mp.OfflineReplicas = append(mp.OfflineReplicas, r)
		}
	}
	for _, r := range s.view.InSync(topic, slot.Index) {
		if !offline(r) {
			mp.ISR = append(mp.ISR, r)
		}
	}
	l, err := s.view.Leader(topic, slot.Index)
	switch {
	case err != nil || l.Node < 0:
		// No leader now (an election, or the topic went away meanwhile).
		mp.ErrorCode, mp.Leader, mp.LeaderEpoch = kerr.LeaderNotAvailable.Code, -1, l.Epoch
		electing = err == nil && (slot.Partition != nil && !localFailed || slot.NoLocalReplica())
	case l.Node == self && localFailed:
		mp.ErrorCode, mp.Leader, mp.LeaderEpoch = kerr.LeaderNotAvailable.Code, -1, -1
	case !reachable[l.Node]:
		mp.ErrorCode, mp.Leader, mp.LeaderEpoch = kerr.LeaderNotAvailable.Code, -1, l.Epoch
	default:
		mp.Leader, mp.LeaderEpoch = l.Node, l.Epoch
		// Its node may have just died: wait to see it found gone (then
		// an election runs) or connected again.
		electing = l.Disconnected
	}
	return mp, electing
}
