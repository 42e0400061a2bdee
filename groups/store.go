package groups

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/partition"
)

// OffsetsTopic is the internal topic holding committed offsets.
const OffsetsTopic = "__consumer_offsets"

// restoreReadBytes is how much of the offsets log one read returns on start.
const restoreReadBytes = 1 << 20

// offsetsLog appends to and replays __consumer_offsets. Only the driver
// goroutine uses it.
type offsetsLog struct {
	cluster    *cluster.Cluster
	partitions int32
	// lastAppended is the last offset appended per partition, so a fetch
	// can wait until what it reads is durable.
	lastAppended map[int32]int64
}

func newOffsetsLog(c *cluster.Cluster, partitions int32) *offsetsLog {
	if t, ok := c.Topic(OffsetsTopic); ok {
		partitions = int32(len(t.Partitions))
	}
	return &offsetsLog{cluster: c, partitions: partitions, lastAppended: map[int32]int64{}}
}

// partitionOf returns the group's offsets partition, creating the topic on
// first use.
func (l *offsetsLog) partitionOf(group string) (*partition.Partition, error) {
	t, ok := l.cluster.Topic(OffsetsTopic)
	if !ok {
		_, err := l.cluster.CreateTopic(OffsetsTopic, l.partitions, offsetsTopicConfigs(), false)
		if err != nil && !errors.Is(err, cluster.ErrTopicExists) {
			return nil, fmt.Errorf("create %s: %w", OffsetsTopic, err)
		}
	} else if t.Configs["cleanup.policy"] != "compact" {
		// Created by someone else (a client, an operator) with other
		// configs: offsets must be compacted, never deleted by age.
		if err := l.cluster.SetConfigs(OffsetsTopic, offsetsTopicConfigs(), false); err != nil {
			return nil, fmt.Errorf("make %s compacted: %w", OffsetsTopic, err)
		}
	}
	return l.cluster.Partition(OffsetsTopic, partitionFor(group, l.partitions))
}

func offsetsTopicConfigs() map[string]string { return map[string]string{"cleanup.policy": "compact"} }

// appended is a place in the offsets log that a reply waits to be durable;
// the zero value waits for nothing.
type appended struct {
	partition *partition.Partition
	last      int64
}

// waitDurable returns once everything up to a.last is durable, or the
// partition's failure, or ctx's error. Called off the loop.
func (a appended) waitDurable(ctx context.Context) error {
	if a.partition == nil {
		return nil
	}
	return a.partition.WaitDurable(ctx, a.last)
}

// append writes records for group in one batch and returns where they
// ended, for the caller to wait on.
func (l *offsetsLog) append(group string, records []batch.Record, nowMs int64) (appended, error) {
	p, err := l.partitionOf(group)
	if err != nil {
		return appended{}, err
	}
	for i := range records {
		records[i].Offset, records[i].TimestampMs = int64(i), nowMs
	}
	res, err := p.Append(batch.Build(records, batch.None))
	if err != nil {
		return appended{}, fmt.Errorf("append to %s-%d: %w", OffsetsTopic, p.Index(), err)
	}
	l.lastAppended[p.Index()] = res.LastOffset
	return appended{partition: p, last: res.LastOffset}, nil
}

// durablePoint is what a reader of group's offsets waits for: the last
// offset appended to its partition; nothing when none was.
func (l *offsetsLog) durablePoint(group string) appended {
	if _, ok := l.cluster.Topic(OffsetsTopic); !ok {
		return appended{}
	}
	p, err := l.cluster.Partition(OffsetsTopic, partitionFor(group, l.partitions))
	if err != nil {
		return appended{}
	}
	last, ok := l.lastAppended[p.Index()]
	if !ok {
		return appended{}
	}
	return appended{partition: p, last: last}
}

// failure returns the storage failure of group's offsets partition, or nil.
// After one, the log may lack changes the Machine holds (a deletion whose
// sync failed), so requests that would be answered from the Machine alone
// must be refused with it instead.
func (l *offsetsLog) failure(group string) error {
	if _, ok := l.cluster.Topic(OffsetsTopic); !ok {
		return nil
	}
	p, err := l.cluster.Partition(OffsetsTopic, partitionFor(group, l.partitions))
	if err != nil {
		return err
	}
	return p.Err()
}

// restore replays every partition of the topic into m.
func (l *offsetsLog) restore(m *Machine) (int, error) {
	t, ok := l.cluster.Topic(OffsetsTopic)
	if !ok {
		return 0, nil
	}
	count := 0
	for _, slot := range t.Partitions {
		if slot.Partition == nil {
			return count, fmt.Errorf("restore %s-%d: %w", OffsetsTopic, slot.Index, slot.Offline)
		}
		n, err := restorePartition(m, slot.Partition)
		count += n
		if err != nil {
			return count, fmt.Errorf("restore %s-%d: %w", OffsetsTopic, slot.Index, err)
		}
	}
	return count, nil
}

func restorePartition(m *Machine, p *partition.Partition) (int, error) {
	// Everything recovered is synced before serving, so the high watermark
	// is the end of the log here.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if end := p.LogEndOffset(); end > 0 {
		if err := p.WaitDurable(ctx, end-1); err != nil {
			return 0, err
		}
	}
	count := 0
	offset := p.LogStartOffset()
	for offset < p.HighWatermark() {
		res, err := p.Read(offset, restoreReadBytes)
		if err != nil {
			return count, err
		}
		if len(res.Records) == 0 {
			break
		}
		data := res.Records
		for len(data) > 0 {
			h, whole, rest, err := batch.Next(data)
			if err != nil {
				return count, fmt.Errorf("batch at %d: %w", offset, err)
			}
			data = rest
			offset = max(offset, h.NextOffset())
			records, err := batch.Records(whole, batch.DefaultLimits())
			if err != nil {
				return count, fmt.Errorf("batch at %d: %w", h.BaseOffset, err)
			}
			for _, r := range records {
				if err := restoreRecord(m, r.Key, r.Value); err != nil {
					return count, fmt.Errorf("record at %d: %w", r.Offset, err)
				}
				count++
			}
		}
	}
	return count, nil
}
