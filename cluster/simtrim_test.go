package cluster

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/partition"
)

var simCompactSeeds = flag.Int("sim.compactseeds", 20, "how many seeds TestSimulatedClusterCompacted runs, from -sim.from (or -sim.seed alone)")

const (
	// simCleanInterval is how often a compacted run's nodes clean: many
	// passes in a run of a few simulated seconds.
	simCleanInterval = 250 * time.Millisecond
	// simKeys is how many keys a compacted run's writer cycles through,
	// and every simTombstoneEvery-th record of it is a tombstone.
	simKeys           = 23
	simTombstoneEvery = 7
	// simTombstone stands for a tombstone's null value in simRecordString.
	simTombstone = "∅"
)

// TestSimulatedClusterCompacted runs random schedules, as
// TestSimulatedClusterPartitions does, on a topic whose records go: it is
// compacted (cleanup.policy=compact,delete; 23 keys, every seventh record
// a tombstone) in segments of 2 KiB every 250 ms of simulated time, and
// the schedule also draws DeleteRecords calls (under a fault at times).
// Each trim compacts the replicas' Raft logs, so a replica behind them (a
// wiped node refilled, a moved replica, a follower cut off) catches up by
// a snapshot copy of segments its sender's cleaner is rewriting meanwhile.
// Checked as every run (no offset holds two records, high watermarks never
// move back), and after the heal, on every replica: its log start lies
// between the highest acknowledged DeleteRecords offset and the highest
// asked; every acknowledged record above it is at its offset, unless a
// later record of its key was committed (compaction) or it is a
// tombstone.
func TestSimulatedClusterCompacted(t *testing.T) {
	for _, seed := range simSeedList(*simCompactSeeds) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("seed %d failed; replay with: go test ./cluster -run TestSimulatedClusterCompacted -sim.seed=%d -sim.log", seed, seed)
				}
			}()
			trim := &simTrim{asked: -1, acked: -1}
			rng := rand.New(rand.NewPCG(seed, 0x5eed))
			var schedule []simElement
			for _, e := range drawSchedule(rng, simElements, *simNodes) {
				if rng.IntN(2) == 0 {
					schedule = append(schedule, simTrimElements[rng.IntN(len(simTrimElements))])
				}
				schedule = append(schedule, e)
			}
			if *simOnly != "" {
				schedule = []simElement{simElementNamed(t, *simOnly)}
			}
			r := runScheduleTrimmed(t, seed, rng, *simNodes, schedule, trim)
			t.Logf("seed %d: %d appends acknowledged (%d retries answered as written before), %d attempts not, final high watermark %d, records deleted below %d (asked %d), "+
				"%d acknowledged records compacted away on the replicas, network %+v",
				seed, len(r.acked), r.duplicates, r.unacked, r.hwm, trim.acked, trim.asked, trim.compacted, r.net)
		})
	}
}

// simTrim is a compacted run's record of what may have gone from its
// replicas' logs besides what compaction removes.
type simTrim struct {
	mu sync.Mutex
	// asked is the highest offset a DeleteRecords call asked for,
	// answered or not; acked the highest one answered.
	asked, acked int64
	// compacted counts, once checked, the acknowledged records above a
	// replica's log start it no longer holds, summed over the replicas.
	compacted int
}

func (tr *simTrim) topicConfigs() map[string]string {
	return map[string]string{
		"cleanup.policy":      "compact,delete",
		"segment.bytes":       "2048",
		"delete.retention.ms": "500",
	}
}

// record is the writer's i-th record in a compacted run: key k<i mod
// simKeys>, value v<i> or a tombstone, and i in a header, so a tombstone
// is told apart from its key's others.
func (tr *simTrim) record(i int) batch.Record {
	r := batch.Record{Key: fmt.Appendf(nil, "k%d", i%simKeys), Headers: []batch.RecordHeader{{Key: "i", Value: []byte(strconv.Itoa(i))}}}
	if i%simTombstoneEvery != simTombstoneEvery-1 {
		r.Value = fmt.Appendf(nil, "v%d", i)
	}
	return r
}

// deleted records a DeleteRecords call: asked before it is made, and
// answered when it succeeded.
func (tr *simTrim) deleted(offset int64, answered bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.asked = max(tr.asked, offset)
	if answered {
		tr.acked = max(tr.acked, offset)
	}
}

// simKeyOf returns the key of a record as simRecordString gave it, and
// whether it is a tombstone.
func simKeyOf(record string) (key string, tombstone bool) {
	key, rest, _ := strings.Cut(record, "=")
	return key, strings.HasPrefix(rest, simTombstone+"@")
}

// checkFinal checks every replica's log (final, read up to its high
// watermark, from its log start in starts) against what was
// acknowledged and what any replica ever exposed (seen).
func (tr *simTrim) checkFinal(t *testing.T, acked, seen map[int64]string, final map[int32]map[int64]string, starts map[int32]int64) {
	t.Helper()
	tr.mu.Lock()
	asked, answered := tr.asked, tr.acked
	tr.mu.Unlock()
	// A record may be compacted away once a later record of its key was
	// committed: acknowledged, or exposed below a high watermark.
	newest := map[string]int64{}
	for _, records := range []map[int64]string{acked, seen} {
		for off, record := range records {
			key, _ := simKeyOf(record)
			if was, ok := newest[key]; !ok || off > was {
				newest[key] = off
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(final)) {
		start, records := starts[id], final[id]
		if start < answered || start > max(asked, 0) {
			t.Errorf("node %d's log starts at %d: DeleteRecords were answered up to %d and asked up to %d", id, start, answered, asked)
		}
		for off, record := range records {
			if want, ok := acked[off]; ok && want != record {
				t.Errorf("acknowledged %q at offset %d, node %d holds %q there", want, off, id, record)
			}
		}
		for off, record := range acked {
			if off < start {
				continue
			}
			if _, ok := records[off]; ok {
				continue // compared above
			}
			tr.compacted++
			key, tombstone := simKeyOf(record)
			if newest[key] == off && !tombstone {
				t.Errorf("acknowledged %q at offset %d, the newest record of its key, is missing on node %d (log start %d)", record, off, id, start)
			}
		}
	}
}

// simTrimElements are the elements a compacted run's schedules draw
// besides simElements.
var simTrimElements = []simElement{
	{name: "delete records", run: func(s *simScenario) {
		// Up to an offset drawn between the leader's log start and high
		// watermark, at times under a fault (the leader's own, too).
		if s.rng.IntN(2) == 0 {
			s.fault(s.node())
		}
		to, node, p := int64(-1), int32(0), s.sc.leaderReplica()
		if ls := s.sc.leaders(); len(ls) > 0 {
			node = ls[0]
		}
		if p != nil {
			start, hwm := p.LogStartOffset(), p.HighWatermark()
			to = start + s.rng.Int64N(max(hwm-start, 0)+1)
			s.sc.trim.deleted(to, false)
			s.sc.call(node, fmt.Sprintf("delete records below %d", to), 5*simElectionMs*time.Millisecond, func(ctx context.Context) error {
				_, err := p.DeleteRecordsBefore(ctx, to)
				if err == nil {
					s.sc.trim.deleted(to, true)
				}
				return err
			})
		}
		s.phase(fmt.Sprintf("after deleting records below %d", to), s.steady())
		s.healed()
	}},
}

// leaderReplica is the partition's replica on the node that leads it, or
// nil when no running node does.
func (sc *simCluster) leaderReplica() *partition.Partition {
	ls := sc.leaders()
	if len(ls) == 0 {
		return nil
	}
	c := sc.node(ls[0])
	if c == nil {
		return nil
	}
	p, err := c.Partition(simTopic, 0)
	if err != nil {
		return nil
	}
	return p
}
