package clusterlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/cdc"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/partition"
)

const (
	// readBytesMax bounds one read while looking for a partition's position.
	readBytesMax = 1 << 20
	// leadTimeout bounds the wait for a partition's leadership.
	leadTimeout = 10 * time.Second
)

// Log writes to and reads from a cluster's partitions.
type Log struct {
	c *cluster.Cluster
}

// New returns the log of c.
func New(c *cluster.Cluster) *Log { return &Log{c: c} }

// Partitions returns the topic's partition count, creating it (with
// partitions, the default replication factor and configs) when missing.
func (l *Log) Partitions(_ context.Context, topic string, partitions int32, configs map[string]string) (int32, error) {
	if t, ok := l.c.Topic(topic); ok {
		return int32(len(t.Partitions)), nil
	}
	t, err := l.c.CreateTopic(topic, partitions, configs, false)
	if errors.Is(err, cluster.ErrTopicExists) {
		var ok bool
		if t, ok = l.c.Topic(topic); !ok {
			return 0, fmt.Errorf("topic %s was deleted while being created", topic)
		}
	} else if err != nil {
		return 0, fmt.Errorf("create topic %s: %w", topic, err)
	}
	return int32(len(t.Partitions)), nil
}

// Topics lists the topics whose names start with prefix.
func (l *Log) Topics(prefix string) []string {
	var out []string
	for _, t := range l.c.Topics() {
		if strings.HasPrefix(t.Name, prefix) {
			out = append(out, t.Name)
		}
	}
	return out
}

// LastPosition reads back from the high watermark, over a window growing
// sixteenfold, until a record with a position turns up (a connector's
// last batch carries it on every record, and compaction keeps the active
// segment) or the log start is reached.
func (l *Log) LastPosition(ctx context.Context, pid cdc.PartitionID) (cdc.Position, error) {
	p, err := l.led(ctx, pid)
	if err != nil {
		return cdc.Position{}, err
	}
	if _, err := p.Linearize(ctx); err != nil {
		return cdc.Position{}, err
	}
	hwm := p.HighWatermark()
	for back := int64(16); ; back *= 16 {
		from := hwm - back
		pos, start, err := scan(p, from, hwm)
		if err != nil {
			return cdc.Position{}, fmt.Errorf("%s-%d: %w", pid.Topic, pid.Index, err)
		}
		if !pos.IsZero() || from <= start {
			return pos, nil
		}
	}
}

// Records calls fn with every record of the partition up to its high
// watermark.
func (l *Log) Records(ctx context.Context, pid cdc.PartitionID, fn func(batch.Record) error) error {
	p, err := l.led(ctx, pid)
	if err != nil {
		return err
	}
	if _, err := p.Linearize(ctx); err != nil {
		return err
	}
	res, err := p.Read(0, 0)
	if err != nil && !errors.Is(err, partition.ErrOffsetOutOfRange) {
		return err
	}
	hwm := p.HighWatermark()
	committed := newCommittedFilter(p, res.LogStartOffset, hwm)
	for next := res.LogStartOffset; next < hwm; {
		res, err := p.Read(next, readBytesMax)
		if err != nil {
			return fmt.Errorf("%s-%d: %w", pid.Topic, pid.Index, err)
		}
		if len(res.Records) == 0 {
			return nil
		}
		lim := p.Limits()
		for rest := res.Records; len(rest) > 0; {
			h, whole, tail, err := batch.Next(rest)
			if err != nil {
				return fmt.Errorf("%s-%d at %d: %w", pid.Topic, pid.Index, next, err)
			}
			rest, next = tail, h.NextOffset()
			if h.Control() || !committed.keep(h) {
				continue
			}
			recs, err := batch.Records(whole, lim)
			if err != nil {
				return err
			}
			for _, r := range recs {
				if err := fn(r); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// committedFilter tells the batches of committed transactions, and plain
// ones, from those of aborted or still open transactions: a connector's
// position comes from what a read_committed reader sees only, or a
// transaction cut short by a crash (aborted by the next Fence) would
// count as held.
type committedFilter struct {
	aborted []partition.AbortedTxn
	stable  int64 // the last stable offset: later transactional batches are open
}

func newCommittedFilter(p *partition.Partition, from, to int64) committedFilter {
	return committedFilter{aborted: p.AbortedTransactions(from, to), stable: p.LastStableOffset()}
}

// keep reports whether the data batch h is plain or committed.
func (f committedFilter) keep(h batch.Header) bool {
	if !h.Transactional() {
		return true
	}
	if h.BaseOffset >= f.stable {
		return false
	}
	for _, a := range f.aborted {
		if a.ProducerID == h.ProducerID && a.FirstOffset <= h.BaseOffset && h.BaseOffset <= a.LastOffset {
			return false
		}
	}
	return true
}

// scan returns the highest position among the records in [from, hwm), and
// the log start offset.
func scan(p *partition.Partition, from, hwm int64) (cdc.Position, int64, error) {
	var best cdc.Position
	// A read of nothing, for the log start (also given when out of range).
	res, err := p.Read(max(from, 0), 0)
	if err != nil && !errors.Is(err, partition.ErrOffsetOutOfRange) {
		return cdc.Position{}, 0, err
	}
	start := res.LogStartOffset
	next := max(from, start)
	committed := newCommittedFilter(p, next, hwm)
	for next < hwm {
		res, err := p.Read(next, readBytesMax)
		if err != nil {
			return cdc.Position{}, 0, err
		}
		if len(res.Records) == 0 {
			break
		}
		lim := p.Limits()
		for rest := res.Records; len(rest) > 0; {
			h, whole, tail, err := batch.Next(rest)
			if err != nil {
				return cdc.Position{}, 0, fmt.Errorf("read at %d: %w", next, err)
			}
			rest = tail
			next = h.NextOffset()
			if h.Control() || !committed.keep(h) {
				continue
			}
			recs, err := batch.Records(whole, lim)
			if err != nil {
				return cdc.Position{}, 0, err
			}
			pos, err := cdc.LastPosition(recs)
			if err != nil {
				return cdc.Position{}, 0, err
			}
			if best.Less(pos) {
				best = pos
			}
		}
	}
	return best, start, nil
}

// Append writes records as one batch and returns the wait for acks=all.
func (l *Log) Append(ctx context.Context, pid cdc.PartitionID, records []batch.Record) (func(context.Context) error, error) {
	p, err := l.led(ctx, pid)
	if err != nil {
		return nil, err
	}
	res, err := p.Append(batch.Build(records, batch.None))
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error { return p.WaitAppended(ctx, res, true) }, nil
}

// led returns the partition once this node leads it, asking for its
// leadership when another node has it.
func (l *Log) led(ctx context.Context, pid cdc.PartitionID) (*partition.Partition, error) {
	leader, err := l.c.Leader(pid.Topic, pid.Index)
	if err != nil {
		return nil, err
	}
	if !leader.Local {
		tctx, cancel := env.WithTimeout(ctx, l.c.Env().Clock, leadTimeout)
		err := l.c.TransferLeader(tctx, pid.Topic, pid.Index, l.c.NodeID())
		cancel()
		if err != nil {
			return nil, fmt.Errorf("lead %s-%d (led by node %d): %w", pid.Topic, pid.Index, leader.Node, err)
		}
	}
	return l.c.Partition(pid.Topic, pid.Index)
}
