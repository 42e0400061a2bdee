package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"sort"

	"github.com/cairnlog/cairn/cluster/topicrules"
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
// With validateOnly it checks everything and changes nothing.
func (c *Cluster) CreateTopic(name string, partitions int32, configs map[string]string, validateOnly bool) (*Topic, error) {
	if err := ValidateTopicName(name); err != nil {
		return nil, err
	}
	if partitions < 1 || partitions > c.cfg.PartitionsMax {
		return nil, fmt.Errorf("%w: %d, must be between 1 and %d", ErrInvalidPartitions, partitions, c.cfg.PartitionsMax)
	}
	pcfg, err := c.partitionConfig(configs)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.topics[name]; ok {
		return nil, fmt.Errorf("%w: %s", ErrTopicExists, name)
	}
	if validateOnly {
		return &Topic{Name: name, Configs: configs}, nil
	}
	t := &Topic{Name: name, Configs: maps.Clone(configs)}
	_, _ = c.env.Rand.Read(t.ID[:]) // never fails
	for i := int32(0); i < partitions; i++ {
		s, err := c.createPartition(name, i, pcfg, ErrTopicExists)
		if err != nil {
			c.removeCreated(t.Partitions)
			return nil, fmt.Errorf("create topic %s: %w", name, err)
		}
		if s.Partition == nil {
			c.removeCreated(t.Partitions)
			return nil, fmt.Errorf("create topic %s: %w", name, s.Offline)
		}
		t.Partitions = append(t.Partitions, s)
	}
	c.topics[name] = t
	if err := c.persistTopics(); err != nil {
		delete(c.topics, name)
		c.removeCreated(t.Partitions)
		return nil, fmt.Errorf("create topic %s: %w", name, err)
	}
	c.env.Logger.Info("topic created", "topic", name, "partitions", partitions)
	return t, nil
}

// createPartition opens a new, empty partition. A directory already at its
// place belongs to no topic (start-up refuses those, so it appeared while
// the node ran): it is refused, never adopted, since undoing a failed
// create removes what it opened. Such a directory gives an error wrapping
// exists, the caller's protocol error.
func (c *Cluster) createPartition(topic string, index int32, cfg partition.Config, exists error) (*PartitionSlot, error) {
	dir := partitionDirName(topic, index)
	_, err := c.env.FS.Stat(path.Join(c.cfg.DataDir, dir))
	if err == nil {
		return nil, fmt.Errorf("%w: directory %s is in the data dir but belongs to no topic; move it out of the data dir first", exists, dir)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("check for directory %s: %w", dir, err)
	}
	return c.openPartition(topic, index, cfg), nil
}

// removeCreated removes partitions that a failed create or grow opened:
// they are new and empty, and no topic lists them.
func (c *Cluster) removeCreated(slots []*PartitionSlot) {
	for _, s := range slots {
		if s.Partition == nil {
			continue
		}
		if err := s.Partition.Delete(); err != nil {
			// Left behind, the directory would make the next start refuse
			// to run, naming it; the operator can then remove it.
			c.env.Logger.Error("removing a partition of a failed create", "topic", s.Partition.Topic(), "partition", s.Index, "err", err)
		}
	}
}

// DeleteTopic removes a topic and its data. Its partitions are closed and
// their directories marked for deletion (renamed, synced) before the topic
// leaves topics.json: a crash part way leaves marked directories, and the
// next start finishes the deletion; unmarked directories are never removed.
func (c *Cluster) DeleteTopic(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.topics[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	for _, s := range t.Partitions {
		if s.Partition != nil {
			if err := s.Partition.Close(); err != nil {
				// The data is being deleted; a close error (a partition
				// already offline says why again) changes nothing.
				c.env.Logger.Warn("closing a partition of a deleted topic", "topic", name, "partition", s.Index, "err", err)
			}
		}
	}
	marked, err := c.markForDeletion(name, t.ID, int32(len(t.Partitions)))
	if err != nil {
		err = fmt.Errorf("delete topic %s: %w; restart the server to finish the deletion", name, err)
		c.topics[name] = offlineTopic(t, err)
		return err
	}
	delete(c.topics, name)
	if err := c.persistTopics(); err != nil {
		return fmt.Errorf("delete topic %s: the topic is deleted and its directories are removed at the next start: %w", name, err)
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
		offline.Partitions = append(offline.Partitions,
			&PartitionSlot{Index: s.Index, Offline: fmt.Errorf("%w: %v", ErrPartitionOffline, err)})
	}
	return offline
}

// CreatePartitions raises a topic's partition count to count.
func (c *Cluster) CreatePartitions(name string, count int32, validateOnly bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.topics[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	if topicrules.IsStream(t.Configs) {
		// A stream lives in the partition murmur2 of its key picks among the
		// current count; more partitions would move streams mid-life.
		return fmt.Errorf("%w: topic %s has cleanup.policy=stream, whose streams would move to other partitions",
			ErrInvalidPartitions, name)
	}
	if count <= int32(len(t.Partitions)) || count > c.cfg.PartitionsMax {
		return fmt.Errorf("%w: topic %s has %d partitions; the new count must be larger and at most %d",
			ErrInvalidPartitions, name, len(t.Partitions), c.cfg.PartitionsMax)
	}
	if validateOnly {
		return nil
	}
	pcfg, err := c.partitionConfig(t.Configs)
	if err != nil {
		return err
	}
	grown := &Topic{Name: t.Name, ID: t.ID, Configs: t.Configs, Partitions: append([]*PartitionSlot(nil), t.Partitions...)}
	var added []*PartitionSlot
	for i := int32(len(t.Partitions)); i < count; i++ {
		s, err := c.createPartition(name, i, pcfg, ErrInvalidPartitions)
		if err != nil {
			c.removeCreated(added)
			return fmt.Errorf("create partitions for %s: %w", name, err)
		}
		if s.Partition == nil {
			c.removeCreated(added)
			return fmt.Errorf("create partitions for %s: %w", name, s.Offline)
		}
		added = append(added, s)
	}
	grown.Partitions = append(grown.Partitions, added...)
	c.topics[name] = grown
	if err := c.persistTopics(); err != nil {
		c.topics[name] = t
		c.removeCreated(added)
		return fmt.Errorf("create partitions for %s: %w", name, err)
	}
	return nil
}

// SetConfigs replaces a topic's config overrides (AlterConfigs) after
// validating them, and applies them to its open partitions. A change that
// takes the topic out of cleanup.policy=stream is refused unless configs
// holds ForceLeaveStreamConfig=true (which is not stored). A partition turned
// to stream builds its index in the background, so c.mu is not held for it.
func (c *Cluster) SetConfigs(name string, configs map[string]string, validateOnly bool) error {
	configs, force, err := topicrules.TakeForceLeaveStream(configs)
	if err != nil {
		return err
	}
	pcfg, err := c.partitionConfig(configs)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.topics[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	if err := topicrules.CheckLeaveStream(name, t.Configs, pcfg, force); err != nil {
		return err
	}
	if validateOnly {
		return nil
	}
	updated := &Topic{Name: t.Name, ID: t.ID, Configs: maps.Clone(configs), Partitions: t.Partitions}
	c.topics[name] = updated
	if err := c.persistTopics(); err != nil {
		c.topics[name] = t
		return fmt.Errorf("alter configs of %s: %w", name, err)
	}
	var errs []error
	for _, s := range t.Partitions {
		if s.Partition != nil {
			errs = append(errs, s.Partition.SetConfig(pcfg))
		}
	}
	return errors.Join(errs...)
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
