package topicrules

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/cairnlog/cairn/partition"
)

// ErrInvalidConfig is wrapped by every config validation error.
var ErrInvalidConfig = errors.New("invalid config")

// configSpec describes one topic config key: its default (as Kafka documents
// it), how it is validated and how it sets the partition config.
type configSpec struct {
	name  string
	def   string
	doc   string
	apply func(value string, c *partition.Config) error
}

func parseInt(name, v string, min int64) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s=%q is not an integer", ErrInvalidConfig, name, v)
	}
	if n < min {
		return 0, fmt.Errorf("%w: %s=%d must be at least %d", ErrInvalidConfig, name, n, min)
	}
	return n, nil
}

func intSetter(name string, min int64, set func(int64, *partition.Config)) func(string, *partition.Config) error {
	return func(v string, c *partition.Config) error {
		n, err := parseInt(name, v, min)
		if err != nil {
			return err
		}
		set(n, c)
		return nil
	}
}

// accepted validates a key Cairn accepts for compatibility (tools such as
// Kafka Connect set them) but whose only meaningful value on one node is the default.
func accepted(name string, allowed ...string) func(string, *partition.Config) error {
	return func(v string, _ *partition.Config) error {
		for _, a := range allowed {
			if v == a {
				return nil
			}
		}
		return fmt.Errorf("%w: %s=%q: supported values are %s", ErrInvalidConfig, name, v, strings.Join(allowed, ", "))
	}
}

var topicConfigSpecs = []configSpec{
	{name: "cleanup.policy", def: "delete", doc: "delete, compact, compact,delete, or stream (an event store: a stream index, and the cleaner removes deleted, truncated and expired streams' events)",
		apply: func(v string, c *partition.Config) error {
			c.DeleteSegments, c.Compact, c.Streams = false, false, false
			if strings.TrimSpace(v) == "stream" {
				c.Streams = true
				return nil
			}
			for _, part := range strings.Split(v, ",") {
				switch strings.TrimSpace(part) {
				case "delete":
					c.DeleteSegments = true
				case "compact":
					c.Compact = true
				default:
					return fmt.Errorf("%w: cleanup.policy=%q: use delete, compact, compact,delete or stream", ErrInvalidConfig, v)
				}
			}
			return nil
		}},
	{name: "retention.ms", def: "604800000", doc: "delete segments whose newest record is older; -1 keeps forever",
		apply: intSetter("retention.ms", -1, func(n int64, c *partition.Config) { c.RetentionMs = n })},
	{name: "retention.bytes", def: "-1", doc: "delete oldest segments while the partition is larger; -1 is no limit",
		apply: intSetter("retention.bytes", -1, func(n int64, c *partition.Config) { c.RetentionBytes = n })},
	{name: "segment.bytes", def: "1073741824", doc: "roll a segment at this size",
		apply: intSetter("segment.bytes", 14, func(n int64, c *partition.Config) { c.Storage.SegmentBytes = n })},
	{name: "segment.ms", def: "604800000", doc: "roll a segment at this age",
		apply: intSetter("segment.ms", 1, func(n int64, c *partition.Config) { c.Storage.SegmentMs = n })},
	{name: "index.interval.bytes", def: "4096", doc: "bytes between sparse index entries",
		apply: intSetter("index.interval.bytes", 0, func(n int64, c *partition.Config) { c.Storage.IndexIntervalBytes = n })},
	{name: "max.message.bytes", def: "1048588", doc: "largest record batch a producer may send",
		apply: func(v string, c *partition.Config) error {
			n, err := parseInt("max.message.bytes", v, 0)
			if err != nil {
				return err
			}
			if n > 1<<30 {
				return fmt.Errorf("%w: max.message.bytes=%d must be at most %d", ErrInvalidConfig, n, 1<<30)
			}
			c.MessageBytesMax = int32(n)
			return nil
		}},
	{name: "delete.retention.ms", def: "86400000", doc: "how long a compacted topic keeps tombstones",
		apply: intSetter("delete.retention.ms", 0, func(n int64, c *partition.Config) { c.DeleteRetentionMs = n })},
	{name: "message.timestamp.type", def: "CreateTime", doc: "CreateTime or LogAppendTime",
		apply: func(v string, c *partition.Config) error {
			switch v {
			case "CreateTime":
				c.LogAppendTime = false
			case "LogAppendTime":
				c.LogAppendTime = true
			default:
				return fmt.Errorf("%w: message.timestamp.type=%q: use CreateTime or LogAppendTime", ErrInvalidConfig, v)
			}
			return nil
		}},
	{name: "compression.type", def: "producer", doc: "batches are stored as the producer compressed them",
		apply: accepted("compression.type", "producer")},
	{name: "min.insync.replicas", def: "1", doc: "acks=all produce is refused (NOT_ENOUGH_REPLICAS) while fewer replicas are in sync",
		apply: intSetter("min.insync.replicas", 1, func(int64, *partition.Config) {})},
	{name: "unclean.leader.election.enable", def: "false", doc: "no effect on a single node",
		apply: accepted("unclean.leader.election.enable", "false", "true")},
	{name: "min.compaction.lag.ms", def: "0", doc: "accepted; compaction considers sealed segments only",
		apply: intSetter("min.compaction.lag.ms", 0, func(int64, *partition.Config) {})},
	{name: "message.downconversion.enable", def: "true", doc: "accepted; only RecordBatch v2 is served",
		apply: accepted("message.downconversion.enable", "true", "false")},
}

// MinInSyncReplicas is a topic's min.insync.replicas: the in-sync
// replicas an acks=all produce needs, checked by the front end before it
// appends (Kafka's rule). Configs were validated when set, so a value
// that does not parse is the default.
func MinInSyncReplicas(configs map[string]string) int {
	v, ok := configs["min.insync.replicas"]
	if !ok {
		return 1 // most topics: no parse on every acks=all produce
	}
	n, err := parseInt("min.insync.replicas", v, 1)
	if err != nil {
		return 1
	}
	return int(min(n, 1<<20))
}

func specFor(name string) (configSpec, bool) {
	for _, s := range topicConfigSpecs {
		if s.name == name {
			return s, true
		}
	}
	return configSpec{}, false
}

// ConfigEntry is one config as DescribeConfigs reports it.
type ConfigEntry struct {
	Name      string
	Value     string
	IsDefault bool
	Doc       string
}

// PartitionConfig builds the partition config from topic overrides on top
// of the defaults, validating every key. Node-wide limits (decompressed
// batch size, producer id expiration) are the caller's to apply.
func PartitionConfig(overrides map[string]string) (partition.Config, error) {
	cfg := partition.DefaultConfig()
	keys := make([]string, 0, len(overrides))
	for k := range overrides {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		spec, ok := specFor(k)
		if !ok {
			return cfg, fmt.Errorf("%w: unknown topic config %q", ErrInvalidConfig, k)
		}
		if err := spec.apply(overrides[k], &cfg); err != nil {
			return cfg, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	return cfg, nil
}

// Describe lists every topic config with its effective value, sorted by name.
func Describe(overrides map[string]string) []ConfigEntry {
	out := make([]ConfigEntry, 0, len(topicConfigSpecs))
	for _, s := range topicConfigSpecs {
		e := ConfigEntry{Name: s.name, Value: s.def, IsDefault: true, Doc: s.doc}
		if v, ok := overrides[s.name]; ok {
			e.Value, e.IsDefault = v, false
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Doc is the documentation of a topic config key ("" if unknown).
func Doc(name string) string {
	s, _ := specFor(name)
	return s.doc
}

// Defaults is every supported config key with its default value.
func Defaults() map[string]string {
	out := make(map[string]string, len(topicConfigSpecs))
	for _, s := range topicConfigSpecs {
		out[s.name] = s.def
	}
	return out
}
