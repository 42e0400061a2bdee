package partition

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/journal"
	"github.com/cairnlog/cairn/storage/vfs"
	dto "github.com/prometheus/client_model/go"
)

var testTopicID = [16]byte{7, 7, 7}

// newDataFS is a crash filesystem holding a durable /data.
func newDataFS(t *testing.T) *vfs.CrashFS {
	t.Helper()
	fsys := vfs.NewCrashFS()
	if err := fsys.MkdirAll("/data"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	return fsys
}

// journalSyncer starts a Syncer with the journal in /data/journal of fsys,
// as a single node does, taking rounds of at least minPartitions.
func journalSyncer(t *testing.T, fsys vfs.FS, minPartitions int) *Syncer {
	t.Helper()
	s, err := NewSyncer(env.Real().Clock, 4)
	if err != nil {
		t.Fatal(err)
	}
	j, records, err := journal.Open(fsys, "/data/journal", journal.Options{MaxFileBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	s.UseJournal(j, records, minPartitions, quiet)
	return s
}

// openJournaled opens partitions t-0 … t-(n-1) of the topic id on fsys
// sharing syncer; segments of segmentBytes (0: the default).
func openJournaled(fsys vfs.FS, syncer *Syncer, n int, topicID [16]byte, segmentBytes int64) ([]*Partition, error) {
	cfg := DefaultConfig()
	if segmentBytes > 0 {
		cfg.Storage.SegmentBytes = segmentBytes
	}
	cfg.Syncer, cfg.TopicID = syncer, topicID
	ps := make([]*Partition, n)
	for i := range ps {
		p, err := Open(testEnv(fsys), fmt.Sprintf("/data/t-%d", i), "t", int32(i), cfg)
		if err != nil {
			closeAll(ps[:i])
			return nil, fmt.Errorf("open partition %d: %w", i, err)
		}
		ps[i] = p
	}
	return ps, nil
}

func TestJournalReplaysWhatSegmentsLost(t *testing.T) {
	fsys := newDataFS(t)
	syncer := journalSyncer(t, fsys, 1)
	ps, err := openJournaled(fsys, syncer, 1, testTopicID, 0)
	if err != nil {
		t.Fatal(err)
	}
	before := journaledSyncs(t)
	var stored [][]byte
	for i := range 3 {
		data := batch.Build([]batch.Record{{Value: []byte(fmt.Sprintf("event %d", i))}}, batch.None)
		res, err := ps[0].Append(data)
		if err != nil {
			t.Fatal(err)
		}
		if err := ps[0].WaitDurable(context.Background(), res.LastOffset); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, data)
	}
	if journaledSyncs(t) == before {
		t.Fatal("no sync went to the journal")
	}
	crashed := fsys.Crash(vfs.CrashOptions{})
	closeAll(ps)
	syncer.Close()

	// The segments alone lost what only the journal holds.
	alone, err := openJournaled(crashed.Crash(vfs.CrashOptions{}), nil, 1, testTopicID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if hwm := alone[0].HighWatermark(); hwm != 0 {
		t.Fatalf("without the journal the log recovered to %d: the test crashes nothing", hwm)
	}
	closeAll(alone)

	// A topic created again under the same name does not take them.
	other := crashed.Crash(vfs.CrashOptions{})
	s2 := journalSyncer(t, other, 1)
	recreated, err := openJournaled(other, s2, 1, [16]byte{8}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if hwm := recreated[0].HighWatermark(); hwm != 0 {
		t.Fatalf("a topic with another id took the old one's records: high watermark %d", hwm)
	}
	closeAll(recreated)
	s2.Close()

	s3 := journalSyncer(t, crashed, 1)
	back, err := openJournaled(crashed, s3, 1, testTopicID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkRecovered(back[0], ackedAt(stored)); err != nil {
		t.Fatal(err)
	}
	s3.FinishReplay(func(journal.Key) bool { return false })
	closeAll(back)
	s3.Close()
	names, err := crashed.List("/data/journal")
	if err != nil || len(names) != 0 {
		t.Fatalf("journal files after a clean close: %v (%v), want none", names, err)
	}
}

// ackedAt gives the batches appended one after the other from offset 0,
// one record each, as acknowledged.
func ackedAt(stored [][]byte) []acked {
	out := make([]acked, len(stored))
	for i, b := range stored {
		out[i] = acked{offset: int64(i), stored: b, pid: -1}
	}
	return out
}

func TestJournalPowerCut(t *testing.T) {
	const partitions, rounds = 8, 4
	before := journaledSyncs(t)
	for budget := 1; ; budget++ {
		cut, err := journalPowerCut(t, budget, partitions, rounds)
		if err != nil {
			t.Fatalf("power cut before call %d: %v", budget, err)
		}
		if !cut {
			t.Logf("power cuts survived: %d points, %.0f syncs made by journal rounds", budget-1, journaledSyncs(t)-before)
			break
		}
		if budget > 100_000 {
			t.Fatal("the workload never finished uncut")
		}
	}
	if journaledSyncs(t) == before {
		t.Fatal("no sync went to the journal")
	}
}

// journalPowerCut runs the workload of syncerPowerCut with the journal
// taking every sync it can (rounds from 1 partition on), segments rolling (so some syncs
// go alone and journal records follow them) and journal files of 4 KiB
// (so files are started, held and forced), cut before the budget-th
// mutating call, and checks the partitions recovered through the journal.
func journalPowerCut(t *testing.T, budget, partitions, rounds int) (bool, error) {
	base := newDataFS(t)
	pcfs := vfs.NewPowerCutFS(base, 1<<30, vfs.CrashOptions{})
	syncer := journalSyncer(t, pcfs, 1)
	ps, err := openJournaled(pcfs, syncer, partitions, testTopicID, 3000)
	if err != nil {
		return false, err
	}
	pcfs.CutAfter(budget)
	acks := make([][]acked, partitions)
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acks[i] = produceUntilCut(p, i, rounds)
		}()
	}
	wg.Wait()
	cut := pcfs.Cut()
	crashed := pcfs.Crash()
	closeAll(ps)
	syncer.Close()
	recovered := journalSyncer(t, crashed, 1)
	defer recovered.Close()
	back, err := openJournaled(crashed, recovered, partitions, testTopicID, 3000)
	if err != nil {
		return cut, fmt.Errorf("recover: %w", err)
	}
	defer closeAll(back)
	for i, p := range back {
		if err := checkRecovered(p, acks[i]); err != nil {
			return cut, fmt.Errorf("partition %d: %w", i, err)
		}
	}
	return cut, nil
}

func TestJournalRoundTakesManyPartitions(t *testing.T) {
	fsys := newDataFS(t)
	slow := slowSyncFS{FS: fsys, delay: 2 * time.Millisecond}
	syncer := journalSyncer(t, slow, 4)
	defer syncer.Close()
	ps, err := openJournaled(slow, syncer, 16, testTopicID, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(ps)
	records, rounds := journaledSyncs(t), journalRounds(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 20 {
				data := batch.Build([]batch.Record{{Value: []byte(fmt.Sprintf("p%d-%d", i, k))}}, batch.None)
				res, err := p.Append(data)
				if err != nil {
					t.Error(err)
					return
				}
				if err := p.WaitDurable(ctx, res.LastOffset); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	records, rounds = journaledSyncs(t)-records, journalRounds(t)-rounds
	t.Logf("%.0f partition syncs in %d journal rounds", records, rounds)
	if rounds == 0 || records < 2*float64(rounds) {
		t.Fatalf("%.0f partition syncs in %d journal rounds: 16 partitions syncing at once should share rounds", records, rounds)
	}
	for i, p := range ps {
		if hwm := p.HighWatermark(); hwm != 20 {
			t.Fatalf("partition %d: high watermark %d, want 20", i, hwm)
		}
	}
}

func TestJournalNotUsedByOnePartition(t *testing.T) {
	fsys := newDataFS(t)
	slow := slowSyncFS{FS: fsys, delay: time.Millisecond}
	syncer := journalSyncer(t, slow, 0)
	defer syncer.Close()
	ps, err := openJournaled(slow, syncer, 1, testTopicID, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(ps)
	records := journaledSyncs(t)
	for k := range 20 {
		res, err := ps[0].Append(batch.Build([]batch.Record{{Value: []byte(fmt.Sprint(k))}}, batch.None))
		if err != nil {
			t.Fatal(err)
		}
		if err := ps[0].WaitDurable(context.Background(), res.LastOffset); err != nil {
			t.Fatal(err)
		}
	}
	if got := journaledSyncs(t) - records; got != 0 {
		t.Fatalf("one partition made %.0f syncs through the journal: it costs a copy for nothing", got)
	}
}

// journaledSyncs reads cairn_node_journal_records_total.
func journaledSyncs(t *testing.T) float64 {
	t.Helper()
	var m dto.Metric
	if err := journalRecords.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// journalRounds reads how many rounds cairn_node_journal_sync_seconds timed.
func journalRounds(t *testing.T) uint64 {
	t.Helper()
	var m dto.Metric
	if err := journalSyncSeconds.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}
