package cluster

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/storage/vfs"
)

// Expected conditions, mapped to protocol errors by the front ends.
var (
	ErrUnknownTopic      = errors.New("unknown topic or partition")
	ErrTopicExists       = errors.New("topic already exists")
	ErrInvalidTopic      = errors.New("invalid topic name")
	ErrInvalidPartitions = errors.New("invalid partition count")
	ErrPartitionOffline  = errors.New("partition offline")
)

// Config is the cluster component's configuration.
type Config struct {
	DataDir string
	// NodeID is this broker's id in metadata responses.
	NodeID int32
	// PartitionsMax bounds partitions per topic and protects the node from a
	// request that would create millions of directories.
	PartitionsMax int32
	// CleanIntervalMs is how often retention and compaction run (log.retention.check.interval.ms).
	CleanIntervalMs int64
	// DecompressedBatchBytesMax bounds one batch's records after
	// decompression, so a decompression bomb costs at most this much memory.
	DecompressedBatchBytesMax int
}

// DefaultConfig returns the defaults for a data directory.
func DefaultConfig(dataDir string) Config {
	return Config{DataDir: dataDir, NodeID: 0, PartitionsMax: 10000, CleanIntervalMs: 30_000,
		DecompressedBatchBytesMax: batch.DecompressedBytesMaxDefault}
}

// Validate reports the first problem in c.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("cluster: data dir is empty")
	}
	if c.PartitionsMax < 1 {
		return fmt.Errorf("cluster: partitions max %d must be positive", c.PartitionsMax)
	}
	if c.DecompressedBatchBytesMax < 1<<20 {
		return fmt.Errorf("cluster: decompressed batch bytes max %d must be at least 1 MiB", c.DecompressedBatchBytesMax)
	}
	if c.CleanIntervalMs < 1 {
		return fmt.Errorf("cluster: clean interval %d ms must be positive", c.CleanIntervalMs)
	}
	return nil
}

// Topic is one topic. Its fields are immutable; a change makes a new *Topic.
type Topic struct {
	Name       string
	ID         [16]byte
	Configs    map[string]string // overrides of the defaults
	Partitions []*PartitionSlot
}

// PartitionSlot is one partition of a topic: open, or offline with the reason.
type PartitionSlot struct {
	Index     int32
	Partition *partition.Partition // nil when offline
	Offline   error
}

// Cluster is the set of topics on this node.
type Cluster struct {
	cfg    Config
	fsys   vfs.FS
	logger *slog.Logger

	mu             sync.Mutex
	id             string
	topics         map[string]*Topic
	nextProducerID int64 // next id handed out
	producerIDEnd  int64 // first id of the next block not yet persisted

	stop chan struct{}
	done chan struct{}
}

// Open loads topics and opens every partition. A partition that fails to open
// (for example, corruption before its recovery point) is kept offline with
// its error; the rest of the node serves.
func Open(fsys vfs.FS, cfg Config, logger *slog.Logger) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := fsys.MkdirAll(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	c := &Cluster{cfg: cfg, fsys: fsys, logger: logger, topics: map[string]*Topic{},
		stop: make(chan struct{}), done: make(chan struct{})}
	if err := c.loadMeta(); err != nil {
		return nil, err
	}
	if err := c.loadTopics(); err != nil {
		return nil, err
	}
	go c.cleanLoop()
	return c, nil
}

// clusterFileVersion and topicsFileVersion are part of the on-disk format.
const (
	clusterFileVersion = 1
	topicsFileVersion  = 1
	clusterFile        = "cluster.json"
	topicsFile         = "topics.json"
	// producerIDBlock ids are reserved durably at a time, so allocation writes
	// a file once per block, and a restart never reuses an id.
	producerIDBlock = 1000
)

type clusterMeta struct {
	Version        int    `json:"version"`
	ClusterID      string `json:"cluster_id"`
	NextProducerID int64  `json:"next_producer_id"`
}

func (c *Cluster) loadMeta() error {
	name := path.Join(c.cfg.DataDir, clusterFile)
	data, err := vfs.ReadFile(c.fsys, name)
	var meta clusterMeta
	switch {
	case errors.Is(err, fs.ErrNotExist):
		var raw [16]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return fmt.Errorf("cluster id: %w", err)
		}
		meta = clusterMeta{Version: clusterFileVersion, ClusterID: base64.RawURLEncoding.EncodeToString(raw[:])}
	case err != nil:
		return fmt.Errorf("read %s: %w", clusterFile, err)
	default:
		if err := json.Unmarshal(data, &meta); err != nil {
			return fmt.Errorf("decode %s: %w", clusterFile, err)
		}
		if meta.Version != clusterFileVersion {
			return fmt.Errorf("%s version %d: unsupported", clusterFile, meta.Version)
		}
	}
	c.id = meta.ClusterID
	c.nextProducerID = meta.NextProducerID
	c.producerIDEnd = meta.NextProducerID
	return c.persistMeta(meta.NextProducerID)
}

func (c *Cluster) persistMeta(nextProducerID int64) error {
	data, err := json.Marshal(clusterMeta{Version: clusterFileVersion, ClusterID: c.id, NextProducerID: nextProducerID})
	if err != nil {
		return err
	}
	if err := vfs.WriteFileAtomic(c.fsys, path.Join(c.cfg.DataDir, clusterFile), data); err != nil {
		return fmt.Errorf("write %s: %w", clusterFile, err)
	}
	return nil
}

// ID is the cluster id reported to clients.
func (c *Cluster) ID() string { return c.id }

// NodeID is this broker's node id.
func (c *Cluster) NodeID() int32 { return c.cfg.NodeID }

// NextProducerID hands out a producer id never used before on this node.
func (c *Cluster) NextProducerID() (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nextProducerID >= c.producerIDEnd {
		end := c.nextProducerID + producerIDBlock
		if err := c.persistMeta(end); err != nil {
			return -1, err
		}
		c.producerIDEnd = end
	}
	id := c.nextProducerID
	c.nextProducerID++
	return id, nil
}

type topicRecord struct {
	Name       string            `json:"name"`
	ID         string            `json:"id"`
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
}

type topicsFileBody struct {
	Version int           `json:"version"`
	Topics  []topicRecord `json:"topics"`
}

func (c *Cluster) loadTopics() error {
	data, err := vfs.ReadFile(c.fsys, path.Join(c.cfg.DataDir, topicsFile))
	var body topicsFileBody
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s: %w", topicsFile, err)
	}
	if err == nil {
		if err := json.Unmarshal(data, &body); err != nil {
			return fmt.Errorf("decode %s: %w", topicsFile, err)
		}
		if body.Version != topicsFileVersion {
			return fmt.Errorf("%s version %d: unsupported", topicsFile, body.Version)
		}
	}
	owned := map[string]bool{}
	for _, rec := range body.Topics {
		t := &Topic{Name: rec.Name, Configs: rec.Configs}
		if err := decodeTopicID(rec.ID, &t.ID); err != nil {
			return fmt.Errorf("topic %s: %w", rec.Name, err)
		}
		pcfg, err := c.partitionConfig(rec.Configs)
		if err != nil {
			return fmt.Errorf("topic %s: %w", rec.Name, err)
		}
		for i := int32(0); i < rec.Partitions; i++ {
			owned[partitionDirName(rec.Name, i)] = true
			t.Partitions = append(t.Partitions, c.openPartition(rec.Name, i, pcfg))
		}
		c.topics[rec.Name] = t
	}
	return c.removeOrphans(owned)
}

// removeOrphans deletes partition directories no topic owns: what a crash in
// the middle of a topic deletion leaves behind.
func (c *Cluster) removeOrphans(owned map[string]bool) error {
	names, err := c.fsys.List(c.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("list data dir: %w", err)
	}
	for _, n := range names {
		if n == clusterFile || n == topicsFile || owned[n] || !looksLikePartitionDir(n) {
			continue
		}
		c.logger.Warn("removing partition directory of a deleted topic", "dir", n)
		if err := c.fsys.RemoveAll(path.Join(c.cfg.DataDir, n)); err != nil {
			return fmt.Errorf("remove orphan %s: %w", n, err)
		}
	}
	return nil
}

func looksLikePartitionDir(name string) bool {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return false
	}
	_, err := strconv.ParseUint(name[i+1:], 10, 31)
	return err == nil
}

func partitionDirName(topic string, index int32) string {
	return topic + "-" + strconv.Itoa(int(index))
}

func (c *Cluster) openPartition(topic string, index int32, cfg partition.Config) *PartitionSlot {
	dir := path.Join(c.cfg.DataDir, partitionDirName(topic, index))
	p, err := partition.Open(c.fsys, dir, topic, index, cfg, c.logger)
	if err != nil {
		c.logger.Error("partition offline", "topic", topic, "partition", index, "err", err)
		return &PartitionSlot{Index: index, Offline: fmt.Errorf("%w: %v", ErrPartitionOffline, err)}
	}
	return &PartitionSlot{Index: index, Partition: p}
}

func (c *Cluster) persistTopics() error {
	body := topicsFileBody{Version: topicsFileVersion}
	for _, t := range c.topics {
		body.Topics = append(body.Topics, topicRecord{Name: t.Name, ID: encodeTopicID(t.ID),
			Partitions: int32(len(t.Partitions)), Configs: t.Configs})
	}
	sort.Slice(body.Topics, func(i, j int) bool { return body.Topics[i].Name < body.Topics[j].Name })
	data, err := json.MarshalIndent(body, "", "  ")
	if err != nil {
		return err
	}
	if err := vfs.WriteFileAtomic(c.fsys, path.Join(c.cfg.DataDir, topicsFile), data); err != nil {
		return fmt.Errorf("write %s: %w", topicsFile, err)
	}
	return nil
}

func encodeTopicID(id [16]byte) string { return base64.RawURLEncoding.EncodeToString(id[:]) }

func decodeTopicID(s string, id *[16]byte) error {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) != 16 {
		return fmt.Errorf("bad topic id %q", s)
	}
	copy(id[:], raw)
	return nil
}

// Close stops the cleaner and closes every partition cleanly.
func (c *Cluster) Close() error {
	close(c.stop)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, t := range c.topics {
		for _, s := range t.Partitions {
			if s.Partition != nil {
				if err := s.Partition.Close(); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// cleanLoop applies retention and compaction to every partition periodically.
func (c *Cluster) cleanLoop() {
	defer close(c.done)
	ticker := time.NewTicker(time.Duration(c.cfg.CleanIntervalMs) * time.Millisecond)
	defer ticker.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-ticker.C:
			c.CleanOnce(time.Now().UnixMilli())
		}
	}
}

// CleanOnce runs retention and compaction over every partition now.
func (c *Cluster) CleanOnce(nowMs int64) {
	for _, t := range c.Topics() {
		for _, s := range t.Partitions {
			if s.Partition == nil {
				continue
			}
			if err := s.Partition.Clean(nowMs); err != nil {
				c.logger.Error("cleaning partition", "topic", t.Name, "partition", s.Index, "err", err)
			}
		}
	}
}

// partitionConfig is the topic's partition config with the node-wide limits applied.
func (c *Cluster) partitionConfig(overrides map[string]string) (partition.Config, error) {
	cfg, err := partitionConfig(overrides)
	cfg.Limits.DecompressedBytesMax = c.cfg.DecompressedBatchBytesMax
	return cfg, err
}
