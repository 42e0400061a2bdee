package groups

import (
	"context"
	"fmt"

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
	cluster *cluster.Cluster
	// partitions is the topic's partition count as the driver last saw it;
	// 0 while the topic does not exist.
	partitions int32
	// lastAppended is the last append per partition, so a fetch can wait
	// until what it reads is committed. Dropped when the partition unloads.
	lastAppended map[int32]appended
}

func newOffsetsLog(c *cluster.Cluster) *offsetsLog {
	return &offsetsLog{cluster: c, lastAppended: map[int32]appended{}}
}

// indexOf is group's offsets partition; -1 while the topic is unknown.
func (l *offsetsLog) indexOf(group string) int32 {
	if l.partitions == 0 {
		return -1
	}
	return partitionFor(group, l.partitions)
}

func offsetsTopicConfigs() map[string]string { return map[string]string{"cleanup.policy": "compact"} }

// appended is a place in the offsets log that a reply waits for; the zero
// value waits for nothing. gen is the load of the partition it was written
// under, so a failure found later unloads that load and no later one.
type appended struct {
	partition *partition.Partition
	res       partition.AppendResult
	index     int32
	gen       uint64
}

// wait returns once everything up to a's last offset is committed (durable
// on a single node), or the partition's failure (partition.ErrNotLeader
// when it lost its leadership first), or ctx's error. Called off the loop.
func (a appended) wait(ctx context.Context) error {
	if a.partition == nil {
		return nil
	}
	return a.partition.WaitAppended(ctx, a.res, true)
}

// append writes records for group in one batch to partition index (loaded
// under gen, in leader epoch epoch) and returns where they ended, for the
// caller to wait on. The batch is appended in that epoch only: a change
// decided on groups loaded then must not land after another leader's
// writes (a leadership lost and won back before the loop saw it).
func (l *offsetsLog) append(index int32, gen uint64, epoch int32, records []batch.Record, nowMs int64) (appended, error) {
	p, err := l.cluster.Partition(OffsetsTopic, index)
	if err != nil {
		return appended{}, fmt.Errorf("append to %s-%d: %w", OffsetsTopic, index, err)
	}
	for i := range records {
		records[i].Offset, records[i].TimestampMs = int64(i), nowMs
	}
	res, err := p.AppendInTerm(batch.Build(records, batch.None), epoch)
	if err != nil {
		return appended{}, fmt.Errorf("append to %s-%d: %w", OffsetsTopic, index, err)
	}
	a := appended{partition: p, res: res, index: index, gen: gen}
	l.lastAppended[index] = a
	return a, nil
}

// failure returns the storage failure of partition index, or nil. After
// one, the log may lack changes the Machine holds (a deletion whose sync
// failed), so requests that would be answered from the Machine alone must
// be refused with it instead.
func (l *offsetsLog) failure(index int32) error {
	if index < 0 {
		return nil
	}
	p, err := l.cluster.Partition(OffsetsTopic, index)
	if err != nil {
		return err
	}
	return p.Err()
}

// restorePartition replays p into m up to its high watermark: everything
// committed, since this node leads p and writes nothing to it until the
// replay is done. It returns the number of records replayed and the
// offset it read to.
func restorePartition(ctx context.Context, m *Machine, p *partition.Partition) (int, int64, error) {
	// A single writer's recovered log is synced before it serves, so its
	// high watermark reaches the end of the log soon after open.
	if end := p.LogEndOffset(); !p.Replicated() && end > 0 {
		if err := p.WaitDurable(ctx, end-1); err != nil {
			return 0, 0, err
		}
	}
	count := 0
	offset := p.LogStartOffset()
	for end := p.HighWatermark(); offset < end; {
		if err := ctx.Err(); err != nil {
			return count, offset, err
		}
		res, err := p.Read(offset, restoreReadBytes)
		if err != nil {
			return count, offset, err
		}
		if len(res.Records) == 0 {
			break
		}
		data := res.Records
		lim := p.Limits()
		for len(data) > 0 {
			h, whole, rest, err := batch.Next(data)
			if err != nil {
				return count, offset, fmt.Errorf("batch at %d: %w", offset, err)
			}
			data = rest
			offset = max(offset, h.NextOffset())
			records, err := batch.Records(whole, lim)
			if err != nil {
				return count, offset, fmt.Errorf("batch at %d: %w", h.BaseOffset, err)
			}
			if h.Transactional() {
				if err := restoreTxnBatch(m, h, records); err != nil {
					return count, offset, fmt.Errorf("transactional batch at %d: %w", h.BaseOffset, err)
				}
				count += len(records)
				continue
			}
			for _, r := range records {
				if err := restoreRecord(m, r.Key, r.Value); err != nil {
					return count, offset, fmt.Errorf("record at %d: %w", r.Offset, err)
				}
				count++
			}
		}
	}
	return count, offset, nil
}
