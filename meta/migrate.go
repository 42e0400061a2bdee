package meta

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
)

// The files of a single-node data directory written before the metadata
// group existed, as package cluster defines them (cluster/cluster.go:
// clusterMeta, topicsFileBody). Only version 1 of each exists.
const legacyFileVersion = 1

type legacyCluster struct {
	Version        int    `json:"version"`
	ClusterID      string `json:"cluster_id"`
	NextProducerID int64  `json:"next_producer_id"`
}

type legacyTopics struct {
	Version int           `json:"version"`
	Topics  []legacyTopic `json:"topics"`
}

type legacyTopic struct {
	Name       string            `json:"name"`
	ID         string            `json:"id"`
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
}

// MigrateLegacy is the metadata group's bootstrap state for a data directory
// written by a single node: the contents of its cluster.json and topics.json
// (nil when there is none: no topics), and self, the node (its id and
// addresses), which becomes the only broker, ACTIVE at incarnation 1, and
// holds the only replica of every partition. The cluster id, topic ids and
// configs are kept; group ids are given in order from 1, topics sorted by
// name and partitions in order, so the migration of the same files always
// gives the same state (a crash part way redoes it identically); producer ids
// continue after the block cluster.json reserved, so none is handed out
// twice. The files must be those a successful start left: topics whose
// deletion was interrupted are deleted first. index is the bootstrap
// snapshot's index.
func MigrateLegacy(clusterJSON, topicsJSON []byte, self *metav1.Broker, index uint64) (*metav1.State, error) {
	var c legacyCluster
	if err := decodeLegacy("cluster.json", clusterJSON, &c, &c.Version); err != nil {
		return nil, err
	}
	st, err := Bootstrap(c.ClusterID, []*metav1.Broker{self}, index)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if c.NextProducerID < 0 {
		return nil, fmt.Errorf("migrate: cluster.json next producer id %d", c.NextProducerID)
	}
	st.NextProducerId = c.NextProducerID
	var topics legacyTopics
	if topicsJSON != nil {
		if err := decodeLegacy("topics.json", topicsJSON, &topics, &topics.Version); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(topics.Topics, func(a, b legacyTopic) int { return strings.Compare(a.Name, b.Name) })
	replica := ReplicaID(self.NodeId, 1)
	for _, lt := range topics.Topics {
		t, err := migrateTopic(lt, st, replica)
		if err != nil {
			return nil, fmt.Errorf("migrate: topics.json: topic %q: %w", lt.Name, err)
		}
		st.Topics = append(st.Topics, t)
	}
	if err := CheckState(st); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return st, nil
}

// decodeLegacy decodes one legacy JSON file into v and checks its version.
func decodeLegacy(name string, data []byte, v any, version *int) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("migrate: decode %s: %w", name, err)
	}
	if *version != legacyFileVersion {
		return fmt.Errorf("migrate: %s version %d: unsupported", name, *version)
	}
	return nil
}

// migrateTopic is a legacy topic with its partitions on replica, taking
// the state's next group ids. CheckState checks the rest (names, configs,
// unique names and ids).
func migrateTopic(lt legacyTopic, st *metav1.State, replica uint64) (*metav1.Topic, error) {
	id, err := base64.RawURLEncoding.DecodeString(lt.ID)
	if err != nil || len(id) != 16 {
		return nil, fmt.Errorf("bad topic id %q", lt.ID)
	}
	if lt.Partitions < 1 || lt.Partitions > PartitionsPerTopicMax {
		return nil, fmt.Errorf("%d partitions, must be between 1 and %d", lt.Partitions, PartitionsPerTopicMax)
	}
	t := &metav1.Topic{Name: lt.Name, Id: id, Configs: lt.Configs}
	for i := range lt.Partitions {
		t.Partitions = append(t.Partitions, &metav1.Partition{Index: i, GroupId: st.NextGroupId,
			Replicas: []uint64{replica}, PreferredLeader: replica})
		st.NextGroupId++
	}
	return t, nil
}
