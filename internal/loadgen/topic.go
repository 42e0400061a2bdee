package loadgen

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/cairnlog/cairn/internal/cli"
)

// ErrNoTopic reports a topic that must exist and does not.
var ErrNoTopic = errors.New("topic does not exist")

// ErrNothingToRead reports a catch-up read of a topic with no records.
var ErrNothingToRead = errors.New("nothing to read")

// topicPartitions returns the partition count of topic, or ErrNoTopic.
func topicPartitions(ctx context.Context, admin *kadm.Client, topic string) (int32, error) {
	details, err := admin.ListTopics(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("describe topic %q: %w", topic, err)
	}
	detail, found := details[topic]
	if !found || errors.Is(detail.Err, kerr.UnknownTopicOrPartition) {
		return 0, fmt.Errorf("topic %q: %w", topic, ErrNoTopic)
	}
	if detail.Err != nil {
		return 0, fmt.Errorf("describe topic %q: %w", topic, detail.Err)
	}
	return int32(len(detail.Partitions)), nil
}

// ensureTopic creates topic with partitions unless it exists, and returns
// the partition count it has.
func ensureTopic(ctx context.Context, admin *kadm.Client, topic string, partitions int32) (int32, error) {
	count, err := topicPartitions(ctx, admin, topic)
	if !errors.Is(err, ErrNoTopic) {
		return count, err
	}
	// -1: the cluster's default replication factor.
	_, err = admin.CreateTopic(ctx, partitions, -1, nil, topic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return 0, fmt.Errorf("create topic %q with %d partitions: %w", topic, partitions, err)
	}
	if err == nil {
		return partitions, nil
	}
	// Another client created it between the two calls.
	return topicPartitions(ctx, admin, topic)
}

// readPlan is where a catch-up read starts and ends in every partition.
type readPlan struct {
	starts  map[int32]int64
	tracker *cli.EndTracker
	records int64 // records between the starts and the ends
}

// planRead lists every partition's log start offset and high watermark.
// Offsets are positions, not counts, once compaction leaves gaps; then
// records is an upper bound.
func planRead(ctx context.Context, admin *kadm.Client, topic string) (readPlan, error) {
	starts, err := listOffsets(ctx, "start", topic, admin.ListStartOffsets)
	if err != nil {
		return readPlan{}, err
	}
	ends, err := listOffsets(ctx, "end", topic, admin.ListEndOffsets)
	if err != nil {
		return readPlan{}, err
	}
	plan := readPlan{starts: make(map[int32]int64, len(ends)), tracker: cli.NewEndTracker()}
	for partition, end := range ends {
		start := starts[partition]
		plan.starts[partition] = start
		plan.tracker.Track(partition, start, end)
		plan.records += max(end-start, 0)
	}
	return plan, nil
}

// listEnds returns every partition's high watermark.
func listEnds(ctx context.Context, admin *kadm.Client, topic string) (map[int32]int64, error) {
	return listOffsets(ctx, "end", topic, admin.ListEndOffsets)
}

func listOffsets(ctx context.Context, which, topic string,
	list func(context.Context, ...string) (kadm.ListedOffsets, error),
) (map[int32]int64, error) {
	listed, err := list(ctx, topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list %s offsets of topic %q: %w", which, topic, err)
	}
	if len(listed[topic]) == 0 {
		return nil, fmt.Errorf("list %s offsets of topic %q: %w", which, topic, ErrNoTopic)
	}
	offsets := make(map[int32]int64, len(listed[topic]))
	for partition, offset := range listed[topic] {
		offsets[partition] = offset.Offset
	}
	return offsets, nil
}
