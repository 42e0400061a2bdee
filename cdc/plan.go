package cdc

import (
	"fmt"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/streams"
)

// Batch is the records of one append to one partition, in order.
type Batch struct {
	Partition PartitionID
	Records   []batch.Record
	// Last is the position of the last record: what the partition holds
	// once the append is durable.
	Last  Position
	bytes int
}

// recordOverheadBytes is a generous bound on a record's framing in a
// batch (length, attributes, deltas, header counts and lengths).
const recordOverheadBytes = 64

// Plan splits a transaction's events into appends: each event goes to the
// partition its key picks (Kafka's default partitioner, so Kafka producers
// of the same keys agree; partition 0 without a key), events a partition
// already holds are dropped, and each partition's events are one batch,
// split only where a batch would pass batchBytesMax. Batches come out in
// the order of their first event. A split transaction is still appended
// exactly once: positions rise within it, so a restart after the first
// part completes the rest.
//
// partitions gives each topic's partition count.
func Plan(events []Event, partitions func(topic string) int32, held Holdings, batchBytesMax int) ([]Batch, error) {
	var out []Batch
	open := map[PartitionID]int{} // partition → index in out of its open batch
	for _, ev := range events {
		n := partitions(ev.Topic)
		if n < 1 {
			return nil, fmt.Errorf("topic %s has no partitions", ev.Topic)
		}
		pid := PartitionID{Topic: ev.Topic}
		if ev.Keyed {
			pid.Index = streams.Partition(ev.Record.Key, n)
		}
		if held.Holds(pid, ev.Position) {
			continue
		}
		size := recordOverheadBytes + len(ev.Record.Key) + len(ev.Record.Value)
		for _, h := range ev.Record.Headers {
			size += len(h.Key) + len(h.Value) + 8
		}
		i, ok := open[pid]
		// A tombstone stays with its delete: they share a position.
		tombstone := ev.Record.Value == nil
		if !ok || out[i].bytes+size > batchBytesMax && len(out[i].Records) > 0 && !tombstone {
			out = append(out, Batch{Partition: pid})
			i = len(out) - 1
			open[pid] = i
		}
		out[i].Records = append(out[i].Records, ev.Record)
		out[i].Last = ev.Position
		out[i].bytes += size
	}
	return out, nil
}
