package integration

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// waitReplicas waits until every one of topic's partitions has a leader
// and three replicas in sync, and returns each partition's replicas.
func waitReplicas(ctx context.Context, t *testing.T, nodes []*cairnServer, topic string, partitions int) map[int32][]int32 {
	t.Helper()
	admin := kadm.NewClient(newKgo(t, nodes[0].kafkaAddr, kgo.SeedBrokers(kafkaAddrs(nodes)...), kgo.MetadataMinAge(100*time.Millisecond)))
	deadline := time.Now().Add(clusterStageWaitMax)
	for {
		topics, err := admin.ListTopics(ctx, topic)
		replicas := map[int32][]int32{}
		if err == nil {
			for index, p := range topics[topic].Partitions {
				if p.Err == nil && p.Leader >= 1 && len(p.Replicas) == 3 && len(p.ISR) == 3 {
					replicas[index] = p.Replicas
				}
			}
		}
		if len(replicas) == partitions {
			return replicas
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d partitions led with three replicas in sync after %s (%v)", topic, len(replicas), partitions, clusterStageWaitMax, err)
		}
		time.Sleep(100 * time.Millisecond) // polling the cluster's metadata
	}
}

// offsetsWatch samples a group's committed offsets while the faults run
// and keeps every time one moved back.
type offsetsWatch struct {
	mu      sync.Mutex
	high    map[int32]int64
	samples int
	back    []string
}

// Bounds of the watch: samples in all, the pause between two, the wait
// for one answer.
const (
	offsetsSamplesMax    = 2000
	offsetsSampleEvery   = 500 * time.Millisecond
	offsetsSampleWaitMax = 5 * time.Second
)

func (w *offsetsWatch) run(ctx context.Context, seeds []string, group, topic string) {
	for range offsetsSamplesMax {
		fetchCtx, cancel := context.WithTimeout(ctx, offsetsSampleWaitMax)
		got, err := fetchGroupOffsets(fetchCtx, seeds, group, topic)
		cancel()
		if err == nil {
			w.add(got)
		}
		select {
		case <-time.After(offsetsSampleEvery): // the sampling rate
		case <-ctx.Done():
			return
		}
	}
}

func (w *offsetsWatch) add(got map[int32]int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.samples++
	for index, at := range got {
		if high, ok := w.high[index]; ok && at < high {
			w.back = append(w.back, fmt.Sprintf("partition %d: committed %d after %d (%s)", index, at, high, time.Now().Format(time.RFC3339Nano)))
			continue
		}
		w.high[index] = at
	}
}

func (w *offsetsWatch) sampled() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.samples
}

// movedBack lists the samples that found a committed offset below an
// earlier one.
func (w *offsetsWatch) movedBack() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.back)
}

// heldCount is what the replicas' data directories hold of the
// acknowledged records.
type heldCount struct {
	verified   int // acknowledged records held at their offset on every replica
	lost       int // acknowledged records missing from their offset on some replica
	duplicates int // values held at two offsets of one replica
	conflicts  int // offsets holding different records on two replicas
	examples   []string
}

func (h *heldCount) example(format string, args ...any) {
	if len(h.examples) < 10 {
		h.examples = append(h.examples, fmt.Sprintf(format, args...))
	}
}

// countHeld compares one partition's copies (offset → value, one per
// replica, named by node id) with the records acknowledged on it.
func (h *heldCount) countHeld(index int32, copies map[int32]map[int64]string, acked map[string]clusterAck) {
	nodes := slices.Sorted(maps.Keys(copies))
	for _, id := range nodes {
		at := map[string]int64{}
		for offset, v := range copies[id] {
			if other, dup := at[v]; dup {
				h.duplicates++
				h.example("partition %d on node %d: %q at offsets %d and %d", index, id, v, other, offset)
			}
			at[v] = offset
			if w, ok := copies[nodes[0]][offset]; ok && w != v {
				h.conflicts++
				h.example("partition %d offset %d: node %d holds %q, node %d %q", index, offset, id, v, nodes[0], w)
			}
		}
	}
	for v, a := range acked {
		if a.partition != index {
			continue
		}
		held := true
		for _, id := range nodes {
			if got, ok := copies[id][a.offset]; !ok || got != v {
				held = false
				h.example("%q acknowledged at %d-%d, node %d holds %q (%t)", v, a.partition, a.offset, id, got, ok)
			}
		}
		if held {
			h.verified++
		} else {
			h.lost++
		}
	}
}

// ackGap is a time without acknowledgements: from the one at from to the
// next, or to the end of the run.
type ackGap struct {
	from   time.Time
	length time.Duration
}

// longestGap is the longest time between two acknowledgements, or from the
// last one to until.
func longestGap(at []time.Time, until time.Time) ackGap {
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	var gap ackGap
	for i := 1; i <= len(at); i++ {
		next := until
		if i < len(at) {
			next = at[i]
		}
		if d := next.Sub(at[i-1]); d > gap.length {
			gap = ackGap{from: at[i-1], length: d}
		}
	}
	return gap
}

// TestCountHeld: the replica check counts an acknowledged record missing
// on one replica as lost, a value at two offsets of a replica as a
// duplicate, and an offset holding two values as a conflict.
func TestCountHeld(t *testing.T) {
	acked := map[string]clusterAck{"a": {offset: 0}, "b": {offset: 1}, "c": {offset: 2}, "other": {partition: 1}}
	tests := []struct {
		name   string
		copies map[int32]map[int64]string
		want   heldCount
	}{
		{"agree", map[int32]map[int64]string{1: {0: "a", 1: "b", 2: "c", 3: "x"}, 2: {0: "a", 1: "b", 2: "c"}}, heldCount{verified: 3}},
		{"lost", map[int32]map[int64]string{1: {0: "a", 1: "b", 2: "c"}, 2: {0: "a", 2: "c"}}, heldCount{verified: 2, lost: 1}},
		{"moved", map[int32]map[int64]string{1: {0: "a", 1: "b", 2: "c"}, 2: {0: "a", 1: "c", 2: "b"}}, heldCount{verified: 1, lost: 2, conflicts: 2}},
		{"duplicated", map[int32]map[int64]string{1: {0: "a", 1: "b", 2: "c", 3: "b"}}, heldCount{verified: 3, duplicates: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := &heldCount{}
			got.countHeld(0, tt.copies, acked)
			got.examples = nil
			if !reflect.DeepEqual(*got, tt.want) {
				t.Fatalf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}
