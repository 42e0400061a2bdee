package cluster

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"sync"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/cluster/topicrules"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/storage/vfs"
)

// Expected conditions, mapped to protocol errors by the front ends.
var (
	ErrUnknownTopic      = errors.New("unknown topic or partition")
	ErrTopicExists       = errors.New("topic already exists")
	ErrInvalidTopic      = topicrules.ErrInvalidTopic
	ErrInvalidConfig     = topicrules.ErrInvalidConfig
	ErrInvalidPartitions = errors.New("invalid partition count")
	ErrPartitionOffline  = errors.New("partition offline")
	// ErrUnknownPartitions: the data directory holds partition directories
	// that no topic owns and that are not marked for deletion. Open refuses
	// to start rather than guess whether they are data or garbage.
	ErrUnknownPartitions = errors.New("partition directories that no topic owns")
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
	// ProducerIDExpirationMs forgets an idempotent producer that appended
	// nothing to a partition for this long (producer.id.expiration.ms).
	ProducerIDExpirationMs int64
}

// DefaultConfig returns the defaults for a data directory.
func DefaultConfig(dataDir string) Config {
	return Config{DataDir: dataDir, NodeID: 0, PartitionsMax: 10000, CleanIntervalMs: 30_000,
		DecompressedBatchBytesMax: batch.DecompressedBytesMaxDefault,
		ProducerIDExpirationMs:    partition.DefaultConfig().ProducerIDExpirationMs}
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
	if c.ProducerIDExpirationMs < 1 {
		return fmt.Errorf("cluster: producer id expiration %d ms must be positive", c.ProducerIDExpirationMs)
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
	cfg Config
	env env.Env // every partition opens with it

	lock vfs.File // the data directory's lock, held until Close

	mu             sync.Mutex
	id             string
	topics         map[string]*Topic
	nextProducerID int64 // next id handed out
	producerIDEnd  int64 // first id of the next block not yet persisted

	stop chan struct{}
	done chan struct{}
}

// Open takes the data directory's lock, loads topics and opens every
// partition. A partition that fails to open (for example, corruption before
// its recovery point) is kept offline with its error; the rest of the node
// serves. Open refuses a data directory holding partition directories that
// no topic owns (ErrUnknownPartitions) and deletes only directories marked
// for deletion. When it fails it leaves nothing open or locked, and creates
// cluster.json only once everything it checks has passed. The data
// directory is on e's filesystem; the cleaner runs on e's clock and new ids
// come from e's randomness.
func Open(e env.Env, cfg Config) (*Cluster, error) {
	if err := e.Check(); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	fsys := e.FS
	if err := fsys.MkdirAll(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	lock, err := lockDataDir(fsys, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, env: e, lock: lock, topics: map[string]*Topic{},
		stop: make(chan struct{}), done: make(chan struct{})}
	if err := c.load(); err != nil {
		_ = c.closePartitions() // the load error is the one to report
		_ = lock.Close()        // releasing a lock only fails on a closed handle
		return nil, err
	}
	go c.cleanLoop()
	return c, nil
}

// load reads and checks the metadata files and the data directory, and only
// then writes anything or opens partitions.
func (c *Cluster) load() error {
	meta, err := c.readMeta()
	if err != nil {
		return err
	}
	records, err := c.readTopics()
	if err != nil {
		return err
	}
	names, err := c.env.FS.List(c.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("list data dir: %w", err)
	}
	plan := planDataDir(names, records)
	if len(plan.unknown) > 0 {
		return unknownPartitionsError(c.cfg.DataDir, plan.unknown)
	}
	c.id, c.nextProducerID, c.producerIDEnd = meta.ClusterID, meta.NextProducerID, meta.NextProducerID
	if err := c.persistMeta(meta.NextProducerID); err != nil {
		return err
	}
	marked := plan.marked
	for _, rec := range records {
		if plan.deleting[rec.record.Name] {
			dirs, err := c.markForDeletion(rec.record.Name, rec.id, rec.record.Partitions)
			if err != nil {
				return fmt.Errorf("finish deleting topic %s: %w", rec.record.Name, err)
			}
			c.env.Logger.Warn("finishing the deletion of a topic interrupted before the last stop", "topic", rec.record.Name)
			marked = append(marked, dirs...)
			continue
		}
		t := &Topic{Name: rec.record.Name, ID: rec.id, Configs: rec.record.Configs}
		for i := int32(0); i < rec.record.Partitions; i++ {
			t.Partitions = append(t.Partitions, c.openPartition(t.Name, i, rec.config))
		}
		c.topics[t.Name] = t
	}
	if len(plan.deleting) > 0 {
		if err := c.persistTopics(); err != nil {
			return err
		}
	}
	return c.removeMarked(marked)
}

// lockFile holds the data directory's lock and, for an operator refused by
// it, the pid of the process holding it.
const lockFile = "LOCK"

// lockDataDir makes this process the only one using dir: two processes
// appending to one segment would interleave their batches and corrupt it.
func lockDataDir(fsys vfs.FS, dir string) (vfs.File, error) {
	name := path.Join(dir, lockFile)
	lock, err := fsys.Lock(name)
	if errors.Is(err, vfs.ErrLocked) {
		holder := "unknown pid"
		if data, readErr := vfs.ReadFile(fsys, name); readErr == nil && len(bytes.TrimSpace(data)) > 0 {
			holder = "pid " + string(bytes.TrimSpace(data))
		}
		return nil, fmt.Errorf("data dir %s is in use by another cairn process (%s): stop it first, or use another data dir: %w",
			dir, holder, err)
	}
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	// The pid only names the holder in the message above; the lock itself is
	// what excludes, so the file needs no sync.
	if err := lock.Truncate(0); err == nil {
		_, err = fmt.Fprintf(lock, "%d\n", os.Getpid())
	}
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("write pid to %s: %w", name, err)
	}
	return lock, nil
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

// readMeta reads cluster.json, or makes a new cluster id when it is missing.
func (c *Cluster) readMeta() (clusterMeta, error) {
	data, err := vfs.ReadFile(c.env.FS, path.Join(c.cfg.DataDir, clusterFile))
	var meta clusterMeta
	switch {
	case errors.Is(err, fs.ErrNotExist):
		var raw [16]byte
		_, _ = c.env.Rand.Read(raw[:]) // never fails
		return clusterMeta{Version: clusterFileVersion, ClusterID: base64.RawURLEncoding.EncodeToString(raw[:])}, nil
	case err != nil:
		return meta, fmt.Errorf("read %s: %w", clusterFile, err)
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		return meta, fmt.Errorf("decode %s: %w", clusterFile, err)
	}
	if meta.Version != clusterFileVersion {
		return meta, fmt.Errorf("%s version %d: unsupported", clusterFile, meta.Version)
	}
	return meta, nil
}

func (c *Cluster) persistMeta(nextProducerID int64) error {
	data, err := json.Marshal(clusterMeta{Version: clusterFileVersion, ClusterID: c.id, NextProducerID: nextProducerID})
	if err != nil {
		return err
	}
	if err := vfs.WriteFileAtomic(c.env.FS, path.Join(c.cfg.DataDir, clusterFile), data); err != nil {
		return fmt.Errorf("write %s: %w", clusterFile, err)
	}
	return nil
}

// Env is the environment the cluster was opened with, for components
// (the group coordinator) that run beside it on the same node.
func (c *Cluster) Env() env.Env { return c.env }

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

// storedTopic is a topic of topics.json, checked and ready to open.
type storedTopic struct {
	record topicRecord
	id     [16]byte
	config partition.Config
}

// readTopics reads and checks topics.json; a missing file is no topics.
func (c *Cluster) readTopics() ([]storedTopic, error) {
	data, err := vfs.ReadFile(c.env.FS, path.Join(c.cfg.DataDir, topicsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", topicsFile, err)
	}
	var body topicsFileBody
	if err := json.Unmarshal(data, &body); err != nil {
		return nil, fmt.Errorf("decode %s: %w", topicsFile, err)
	}
	if body.Version != topicsFileVersion {
		return nil, fmt.Errorf("%s version %d: unsupported", topicsFile, body.Version)
	}
	stored := make([]storedTopic, 0, len(body.Topics))
	for _, rec := range body.Topics {
		s := storedTopic{record: rec}
		if err := decodeTopicID(rec.ID, &s.id); err != nil {
			return nil, fmt.Errorf("topic %s: %w", rec.Name, err)
		}
		if s.config, err = c.partitionConfig(rec.Configs); err != nil {
			return nil, fmt.Errorf("topic %s: %w", rec.Name, err)
		}
		stored = append(stored, s)
	}
	return stored, nil
}

// removeMarked removes directories marked for deletion and makes their
// removal durable.
func (c *Cluster) removeMarked(dirs []string) error {
	for _, dir := range dirs {
		c.env.Logger.Info("removing the directory of a deleted topic", "dir", dir)
		if err := c.env.FS.RemoveAll(path.Join(c.cfg.DataDir, dir)); err != nil {
			return fmt.Errorf("remove deleted partition %s: %w", dir, err)
		}
	}
	if len(dirs) == 0 {
		return nil
	}
	if err := c.env.FS.SyncDir(c.cfg.DataDir); err != nil {
		return fmt.Errorf("remove deleted partitions: %w", err)
	}
	return nil
}

func (c *Cluster) openPartition(topic string, index int32, cfg partition.Config) *PartitionSlot {
	dir := path.Join(c.cfg.DataDir, partitionDirName(topic, index))
	p, err := partition.Open(c.env, dir, topic, index, cfg)
	if err != nil {
		c.env.Logger.Error("partition offline", "topic", topic, "partition", index, "err", err)
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
	if err := vfs.WriteFileAtomic(c.env.FS, path.Join(c.cfg.DataDir, topicsFile), data); err != nil {
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

// Close stops the cleaner, closes every partition cleanly and releases the
// data directory.
func (c *Cluster) Close() error {
	close(c.stop)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.closePartitions()
	if lockErr := c.lock.Close(); lockErr != nil {
		err = errors.Join(err, fmt.Errorf("unlock data dir: %w", lockErr))
	}
	return err
}

// closePartitions closes every open partition. Callers hold mu, or own c alone.
func (c *Cluster) closePartitions() error {
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

// cleanLoop applies retention and compaction to every partition at a fixed
// rate on the cluster's clock: a pass longer than the interval is followed
// at once by the next, never by a backlog of passes.
func (c *Cluster) cleanLoop() {
	defer close(c.done)
	clock := c.env.Clock
	interval := time.Duration(c.cfg.CleanIntervalMs) * time.Millisecond
	next := clock.Now().Add(interval)
	timer := clock.NewTimer(interval)
	defer timer.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-timer.C():
			c.CleanOnce(clock.Now().UnixMilli())
			next = next.Add(interval)
			if now := clock.Now(); next.Before(now) {
				next = now
			}
			timer.ResetAt(next)
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
				c.env.Logger.Error("cleaning partition", "topic", t.Name, "partition", s.Index, "err", err)
			}
		}
	}
}

// partitionConfig is the topic's partition config with the node-wide limits applied.
func (c *Cluster) partitionConfig(overrides map[string]string) (partition.Config, error) {
	cfg, err := topicrules.PartitionConfig(overrides)
	cfg.Limits.DecompressedBytesMax = c.cfg.DecompressedBatchBytesMax
	cfg.ProducerIDExpirationMs = c.cfg.ProducerIDExpirationMs
	return cfg, err
}
