package kafka

// CreateTopics v0-v7. NumPartitions -1 takes Config.DefaultPartitions.
// ReplicationFactor -1 takes the cluster's default (3, or the number of
// brokers when fewer: 1 on a single node); more replicas than brokers
// answer INVALID_REPLICATION_FACTOR, and the cluster places the replicas.
// Deviation: a manual replica assignment is accepted only where the cluster
// is this node alone (numbering the partitions 0..n-1, each on this node);
// on a cluster of several nodes it answers INVALID_REQUEST (not supported
// yet), and naming a node that is not a broker INVALID_REPLICA_ASSIGNMENT.
// Config entries with a null value are ignored. Creation is synchronous:
// the response is sent once the topic exists, so TimeoutMillis is not waited
// on. A topic named twice in one request is refused with INVALID_REQUEST on
// each of its entries, as Kafka does. v5+ responses carry the partition
// count, replication factor 1 and every topic config (source 5, default, or
// 1, set on the topic); v7 carries the topic id. Deviation: a validate-only
// response lists only the configs the request sets, and its topic id is zero.

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/cluster"
)

func init() { register(kmsg.CreateTopics.Int16(), 0, 7, handleCreateTopics) }

// requestError is a refusal decided by a handler: a Kafka error code with a
// message written for the client, in place of the code's generic description.
type requestError struct {
	code    *kerr.Error
	message string
}

func (e *requestError) Error() string { return e.message }
func (e *requestError) Unwrap() error { return e.code }

// refuse builds a requestError; errorCode finds code through Unwrap.
func refuse(code *kerr.Error, format string, args ...any) error {
	return &requestError{code: code, message: fmt.Sprintf(format, args...)}
}

// duplicates reports the names that occur more than once.
func duplicates(names []string) map[string]bool {
	seen := make(map[string]bool, len(names))
	dup := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			dup[n] = true
		}
		seen[n] = true
	}
	return dup
}

func handleCreateTopics(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	names := make([]string, len(req.Topics))
	for i, rt := range req.Topics {
		names[i] = rt.Topic
	}
	dup := duplicates(names)
	clusterCreate := c.allowedCluster(acl.OpCreate)
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		var err error
		if dup[rt.Topic] {
			err = refuse(kerr.InvalidRequest, "topic %q appears more than once in the request", rt.Topic)
		} else if !clusterCreate && !c.allowedTopic(acl.OpCreate, rt.Topic) {
			err = kerr.TopicAuthorizationFailed
		} else {
			err = s.createTopic(req.Version, req.ValidateOnly, rt, &st)
		}
		if err != nil {
			st.ErrorCode = errorCode(err)
			st.ErrorMessage = errorMessage(err)
			st.NumPartitions, st.ReplicationFactor = -1, -1
			st.Configs = nil
		}
		resp.Topics = append(resp.Topics, st)
	}
	return reply{resp: resp}
}

// createTopic creates (or with validateOnly, checks) one topic and fills the
// success fields of st.
func (s *Server) createTopic(version int16, validateOnly bool, rt kmsg.CreateTopicsRequestTopic, st *kmsg.CreateTopicsResponseTopic) error {
	partitions, err := s.requestedPartitions(rt)
	if err != nil {
		return err
	}
	factor := int32(rt.ReplicationFactor)
	if len(rt.ReplicaAssignment) > 0 {
		factor = 1 // checked: each partition on this node alone
	}
	configs := map[string]string{}
	for _, c := range rt.Configs {
		if c.Value == nil {
			continue
		}
		if _, twice := configs[c.Name]; twice {
			return refuse(kerr.InvalidRequest, "config %q appears more than once for topic %q", c.Name, rt.Topic)
		}
		configs[c.Name] = *c.Value
	}
	t, err := s.cluster.CreateTopicReplicated(rt.Topic, partitions, factor, configs, validateOnly)
	if err != nil {
		return err
	}
	st.TopicID = t.ID
	st.NumPartitions = partitions
	st.ReplicationFactor = s.createdFactor(t, factor)
	if version < 5 {
		return nil
	}
	entries := requestedConfigEntries(configs)
	if !validateOnly {
		if entries, err = s.cluster.DescribeConfigs(rt.Topic); err != nil {
			// Deleted by another request since it was created: the creation
			// itself succeeded, so report it without configs.
			if errors.Is(err, cluster.ErrUnknownTopic) {
				return nil
			}
			return err
		}
	}
	for _, e := range entries {
		c := kmsg.NewCreateTopicsResponseTopicConfig()
		value := e.Value
		c.Name, c.Value = e.Name, &value
		c.Source = int8(configSource(e))
		st.Configs = append(st.Configs, c)
	}
	return nil
}

// createdFactor is the replication factor to report for a created topic:
// its first partition's, or for a validate-only default the cluster's
// default (min(3, brokers), as cluster.CreateTopicReplicated documents it).
func (s *Server) createdFactor(t *cluster.Topic, requested int32) int16 {
	switch {
	case len(t.Partitions) > 0 && len(t.Partitions[0].Replicas) > 0:
		return int16(len(t.Partitions[0].Replicas))
	case requested > 0:
		return int16(requested)
	}
	return int16(min(3, max(1, len(s.view.Brokers()))))
}

// requestedConfigEntries are the configs a validate-only request sets: the
// cluster describes configs only of topics that exist.
func requestedConfigEntries(configs map[string]string) []cluster.ConfigEntry {
	out := make([]cluster.ConfigEntry, 0, len(configs))
	for name, value := range configs {
		out = append(out, cluster.ConfigEntry{Name: name, Value: value})
	}
	sortConfigEntries(out)
	return out
}

// requestedPartitions resolves the partition count of a CreateTopics entry,
// refusing a replica assignment this node cannot honour. The replication
// factor is the cluster's to check.
func (s *Server) requestedPartitions(rt kmsg.CreateTopicsRequestTopic) (int32, error) {
	if len(rt.ReplicaAssignment) == 0 {
		if rt.NumPartitions == -1 {
			return s.cfg.DefaultPartitions, nil
		}
		return rt.NumPartitions, nil
	}
	if rt.NumPartitions != -1 || rt.ReplicationFactor != -1 {
		return 0, refuse(kerr.InvalidRequest,
			"topic %q sets both a replica assignment and a partition count or replication factor; set one or the other", rt.Topic)
	}
	seen := make(map[int32]bool, len(rt.ReplicaAssignment))
	for _, a := range rt.ReplicaAssignment {
		if a.Partition < 0 || int(a.Partition) >= len(rt.ReplicaAssignment) || seen[a.Partition] {
			return 0, refuse(kerr.InvalidReplicaAssignment,
				"replica assignment of topic %q must name partitions 0 to %d once each", rt.Topic, len(rt.ReplicaAssignment)-1)
		}
		seen[a.Partition] = true
		if err := s.checkReplicas(a.Replicas); err != nil {
			return 0, err
		}
	}
	return int32(len(rt.ReplicaAssignment)), nil
}

// checkReplicas accepts a manual replica list only where it can be
// honoured: this node alone, on a cluster that is this node alone. On a
// cluster of several nodes the cluster places replicas itself, from a
// replication factor; assignments are not supported there yet.
func (s *Server) checkReplicas(replicas []int32) error {
	brokers := map[int32]bool{s.cluster.NodeID(): true}
	for _, b := range s.view.Brokers() {
		brokers[b.NodeID] = true
	}
	if len(replicas) == 0 {
		return refuse(kerr.InvalidReplicaAssignment, "an assigned partition needs at least one replica")
	}
	seen := make(map[int32]bool, len(replicas))
	for _, r := range replicas {
		if !brokers[r] {
			return refuse(kerr.InvalidReplicaAssignment, "replicas %v: node %d is not a broker of this cluster", replicas, r)
		}
		if seen[r] {
			return refuse(kerr.InvalidReplicaAssignment, "replicas %v: node %d is listed twice", replicas, r)
		}
		seen[r] = true
	}
	if len(brokers) > 1 {
		return refuse(kerr.InvalidRequest,
			"replicas %v: manual replica assignments are not supported yet on a cluster of several nodes; give a replication factor instead", replicas)
	}
	return nil
}
