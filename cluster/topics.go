package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"sort"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/cluster/topicrules"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/partition"
)

// ValidateTopicName applies Kafka's topic name rules.
func ValidateTopicName(name string) error { return topicrules.ValidateName(name) }

// Topics returns every topic, sorted by name.
func (c *Cluster) Topics() []*Topic {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Topic, 0, len(c.topics))
	for _, t := range c.topics {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Topic returns the named topic.
func (c *Cluster) Topic(name string) (*Topic, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.topics[name]
	return t, ok
}

// TopicByID returns the topic with the given id.
func (c *Cluster) TopicByID(id [16]byte) (*Topic, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.topics {
		if t.ID == id {
			return t, true
		}
	}
	return nil, false
}

// Partition returns an open partition, or ErrUnknownTopic, or the error that
// keeps it offline.
func (c *Cluster) Partition(topic string, index int32) (*partition.Partition, error) {
	t, ok := c.Topic(topic)
	if !ok || index < 0 || int(index) >= len(t.Partitions) {
		return nil, fmt.Errorf("%w: %s-%d", ErrUnknownTopic, topic, index)
	}
	s := t.Partitions[index]
	if s.Partition == nil {
		return nil, s.Offline
	}
	return s.Partition, nil
}

// CreateTopic creates a topic with the given partitions and config overrides.
// With validateOnly it checks everything and changes nothing. The metadata
// group applies the creation (the topic id drawn here from the env's
// randomness, every partition on this node); the topic returns with its
// partitions open. A partition that fails to open leaves the topic created
// with that partition offline, and the error says so.
func (c *Cluster) CreateTopic(name string, partitions int32, configs map[string]string, validateOnly bool) (*Topic, error) {
	return c.CreateTopicReplicated(name, partitions, -1, configs, validateOnly)
}

// CreateTopicReplicated is CreateTopic with a replication factor: -1 for
// the default (min(3, active brokers); 1 on a single node), or at most the
// number of active brokers, else ErrInvalidReplicationFactor.
func (c *Cluster) CreateTopicReplicated(name string, partitions, replicationFactor int32, configs map[string]string, validateOnly bool) (*Topic, error) {
	if err := c.checkReplicationFactor(replicationFactor); err != nil {
		return nil, err
	}
	if err := ValidateTopicName(name); err != nil {
		return nil, err
	}
	if partitions < 1 || partitions > c.cfg.PartitionsMax {
		return nil, fmt.Errorf("%w: %d, must be between 1 and %d", ErrInvalidPartitions, partitions, c.cfg.PartitionsMax)
	}
	if _, err := c.partitionConfig(configs); err != nil {
		return nil, err
	}
	c.admin.Lock()
	defer c.admin.Unlock()
	if _, ok := c.Topic(name); ok {
		return nil, fmt.Errorf("%w: %s", ErrTopicExists, name)
	}
	sets, err := c.replicaSets(name, 0, partitions, replicationFactor)
	if err != nil {
		return nil, fmt.Errorf("create topic %s: %w", name, err)
	}
	if validateOnly {
		return &Topic{Name: name, Configs: configs}, nil
	}
	if err := c.checkFree(name, 0, partitions, ErrTopicExists); err != nil {
		return nil, fmt.Errorf("create topic %s: %w", name, err)
	}
	var id [16]byte
	_, _ = c.env.Rand.Read(id[:]) // never fails
	cmd := &metav1.CreateTopic{Name: name, Id: id[:], Configs: maps.Clone(configs), Partitions: sets}
	if _, err := c.propose(&metav1.Command{Command: &metav1.Command_CreateTopic{CreateTopic: cmd}}); err != nil {
		return nil, fmt.Errorf("create topic %s: %w", name, err)
	}
	if err := c.reconcile(); err != nil {
		c.env.Logger.Error("applying configs after a topic creation", "topic", name, "err", err)
	}
	t, ok := c.Topic(name)
	if !ok || t.ID != id {
		return nil, fmt.Errorf("%w: %s was deleted while it was created", ErrUnknownTopic, name)
	}
	if err := offlineErr(t.Partitions); err != nil {
		return nil, fmt.Errorf("create topic %s: the topic is created, but %w", name, err)
	}
	c.env.Logger.Info("topic created", "topic", name, "partitions", partitions)
	return t, nil
}

// checkReplicationFactor refuses a replication factor a single node
// cannot give, or that is neither -1 (the default) nor positive.
func (c *Cluster) checkReplicationFactor(rf int32) error {
	if c.cfg.clustered() && (rf == -1 || rf >= 1) {
		return nil // placement checks it against the active brokers
	}
	if rf != -1 && rf != 1 {
		return fmt.Errorf("%w: %d replicas on a single node", ErrInvalidReplicationFactor, rf)
	}
	return nil
}

// replicaSets places count new partitions of topic, numbered from first:
// on a single node every one on this node, the only replica; on a cluster
// by meta.Place over the applied state (rf -1: the default), which the
// metadata group checks again when it applies the command.
func (c *Cluster) replicaSets(topic string, first, count, rf int32) ([]*metav1.ReplicaSet, error) {
	if c.cfg.clustered() {
		return meta.Place(c.ctl.State(), topic, first, count, rf)
	}
	sets := make([]*metav1.ReplicaSet, count)
	for i := range sets {
		sets[i] = &metav1.ReplicaSet{Replicas: []uint64{c.ctl.Identity().ReplicaID()}}
	}
	return sets, nil
}

// checkFree refuses to create partitions from..to-1 of topic over
// directories already at their place: they belong to no topic (start-up
// refuses those, so they appeared while the node ran), and a partition
// opened over one would adopt unknown data. The error wraps exists, the
// caller's protocol error.
func (c *Cluster) checkFree(topic string, from, to int32, exists error) error {
	for i := from; i < to; i++ {
		dir := partitionDirName(topic, i)
		_, err := c.env.FS.Stat(path.Join(c.cfg.DataDir, dir))
		if err == nil {
			return fmt.Errorf("%w: directory %s is in the data dir but belongs to no topic; move it out of the data dir first", exists, dir)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("check for directory %s: %w", dir, err)
		}
	}
	return nil
}

// offlineErr is the error of the first offline partition among slots; a
// partition with no replica on this node is not offline.
func offlineErr(slots []*PartitionSlot) error {
	for _, s := range slots {
		if s.Partition == nil && !isNoReplica(s) {
			return fmt.Errorf("partition %d: %w", s.Index, s.Offline)
		}
	}
	return nil
}

// DeleteTopic removes a topic and its data. Its partitions are closed and
// their directories marked for deletion (renamed, synced) before the
// deletion is proposed to the metadata group: a crash part way leaves
// marked directories of a topic the state still holds, and the next start
// finishes the deletion; unmarked directories are never removed.
func (c *Cluster) DeleteTopic(name string) error {
	c.admin.Lock()
	defer c.admin.Unlock()
	c.mu.Lock()
	t, ok := c.topics[name]
	if !ok {
		c.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	closeSlots(c, t)
	marked, err := c.markForDeletion(name, t.ID, int32(len(t.Partitions)), slotGroups(t))
	if err != nil {
		err = fmt.Errorf("delete topic %s: %w; restart the server to finish the deletion", name, err)
		c.topics[name] = offlineTopic(t, err)
		c.mu.Unlock()
		return err
	}
	c.topics[name] = offlineTopic(t, fmt.Errorf("topic %s is being deleted", name))
	c.mu.Unlock()
	if _, err := c.propose(deleteCommand(name, t.ID)); err != nil {
		return fmt.Errorf("delete topic %s: %w; its directories are marked, and a restart finishes the deletion", name, err)
	}
	if err := c.reconcile(); err != nil {
		c.env.Logger.Error("applying configs after a topic deletion", "topic", name, "err", err)
	}
	if err := c.removeMarked(marked); err != nil {
		c.env.Logger.Error("removing the directories of a deleted topic; the next start removes them", "topic", name, "err", err)
	}
	c.env.Logger.Info("topic deleted", "topic", name)
	return nil
}

// offlineTopic is t with every partition offline for err.
func offlineTopic(t *Topic, err error) *Topic {
	offline := &Topic{Name: t.Name, ID: t.ID, Configs: t.Configs}
	for _, s := range t.Partitions {
		offline.Partitions = append(offline.Partitions, &PartitionSlot{Index: s.Index, Group: s.Group, Replicas: s.Replicas,
			Offline: fmt.Errorf("%w: %v", ErrPartitionOffline, err), replicaID: s.replicaID})
	}
	return offline
}

// CreatePartitions raises a topic's partition count to count.
func (c *Cluster) CreatePartitions(name string, count int32, validateOnly bool) error {
	c.admin.Lock()
	defer c.admin.Unlock()
	t, ok := c.Topic(name)
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	if topicrules.IsStream(t.Configs) {
		// A stream lives in the partition murmur2 of its key picks among the
		// current count; more partitions would move streams mid-life.
		return fmt.Errorf("%w: topic %s has cleanup.policy=stream, whose streams would move to other partitions",
			ErrInvalidPartitions, name)
	}
	have := int32(len(t.Partitions))
	if count <= have || count > c.cfg.PartitionsMax {
		return fmt.Errorf("%w: topic %s has %d partitions; the new count must be larger and at most %d",
			ErrInvalidPartitions, name, have, c.cfg.PartitionsMax)
	}
	if validateOnly {
		return nil
	}
	if err := c.checkFree(name, have, count, ErrInvalidPartitions); err != nil {
		return fmt.Errorf("create partitions for %s: %w", name, err)
	}
	sets, err := c.replicaSets(name, have, count-have, int32(len(t.Partitions[0].Replicas)))
	if err != nil {
		return fmt.Errorf("create partitions for %s: %w", name, err)
	}
	cmd := &metav1.CreatePartitions{Name: name, Id: t.ID[:], Partitions: sets}
	if _, err := c.propose(&metav1.Command{Command: &metav1.Command_CreatePartitions{CreatePartitions: cmd}}); err != nil {
		return fmt.Errorf("create partitions for %s: %w", name, err)
	}
	if err := c.reconcile(); err != nil {
		c.env.Logger.Error("applying configs after creating partitions", "topic", name, "err", err)
	}
	grown, ok := c.Topic(name)
	if !ok {
		return fmt.Errorf("%w: %s was deleted while it grew", ErrUnknownTopic, name)
	}
	if err := offlineErr(grown.Partitions[min(have, int32(len(grown.Partitions))):]); err != nil {
		return fmt.Errorf("create partitions for %s: the partitions are created, but %w", name, err)
	}
	return nil
}

// SetConfigs replaces a topic's config overrides (AlterConfigs) after
// validating them, and applies them to its open partitions once the
// metadata group applied them. A change that takes the topic out of
// cleanup.policy=stream is refused unless configs holds
// ForceLeaveStreamConfig=true (which is not stored). A partition turned to
// stream builds its index in the background, so c.mu is not held for it.
func (c *Cluster) SetConfigs(name string, configs map[string]string, validateOnly bool) error {
	configs, force, err := topicrules.TakeForceLeaveStream(configs)
	if err != nil {
		return err
	}
	pcfg, err := c.partitionConfig(configs)
	if err != nil {
		return err
	}
	c.admin.Lock()
	defer c.admin.Unlock()
	t, ok := c.Topic(name)
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	if err := topicrules.CheckLeaveStream(name, t.Configs, pcfg, force); err != nil {
		return err
	}
	if validateOnly {
		return nil
	}
	cmd := &metav1.SetTopicConfigs{Name: name, Id: t.ID[:], Configs: maps.Clone(configs), ForceLeaveStream: force}
	if _, err := c.propose(&metav1.Command{Command: &metav1.Command_SetTopicConfigs{SetTopicConfigs: cmd}}); err != nil {
		return fmt.Errorf("alter configs of %s: %w", name, err)
	}
	return c.reconcile()
}

// DescribeConfigs lists a topic's configs with their effective values.
func (c *Cluster) DescribeConfigs(name string) ([]ConfigEntry, error) {
	t, ok := c.Topic(name)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	return topicrules.Describe(t.Configs), nil
}

// ConfigDoc is the documentation of a topic config key ("" if unknown).
func ConfigDoc(name string) string { return topicrules.Doc(name) }

// ConfigEntry is one config as DescribeConfigs reports it.
type ConfigEntry = topicrules.ConfigEntry

// ForceLeaveStreamConfig is a request-only key: set to "true" beside a
// change that takes a topic out of cleanup.policy=stream, it confirms the
// change. It is never stored.
const ForceLeaveStreamConfig = topicrules.ForceLeaveStreamConfig
