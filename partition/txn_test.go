package partition

import (
	"context"
	"errors"
	"fmt"
	"path"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
)

// txnBatch builds a transactional batch of n keyed records of producer pid.
func txnBatch(t *testing.T, pid int64, epoch int16, seq int32, n int, key string) []byte {
	t.Helper()
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = batch.Record{Offset: int64(i), TimestampMs: time.Now().UnixMilli(), Key: []byte(key), Value: []byte(fmt.Sprintf("p%d-%d", pid, int(seq)+i))}
	}
	b, err := batch.Encode(batch.Header{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, Attributes: 0x10}, int32(n-1), recs, batch.None)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// appendTxn appends a producer's batch, as produce does, and waits for it.
func appendTxn(t *testing.T, p *Partition, records []byte) AppendResult {
	t.Helper()
	res, err := p.Append(records)
	if err != nil {
		t.Fatal(err)
	}
	waitAppended(t, p, res)
	return res
}

func waitAppended(t *testing.T, p *Partition, res AppendResult) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitAppended(ctx, res, true); err != nil {
		t.Fatal(err)
	}
}

// endTxn writes a marker and waits until it is durable (committed).
func endTxn(t *testing.T, p *Partition, pid int64, epoch int16, commit bool) AppendResult {
	t.Helper()
	res, err := p.WriteMarker(pid, epoch, commit, 0)
	if err != nil {
		t.Fatal(err)
	}
	waitAppended(t, p, res)
	return res
}

// begin verifies pid's transaction at epoch as the produce path does once
// the coordinator said yes.
func begin(t *testing.T, p *Partition, pid int64, epoch int16) {
	t.Helper()
	guard, err := p.VerifyStart(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.BeginTransaction(pid, epoch, guard); err != nil {
		t.Fatal(err)
	}
}

// TestTxnNeedsCoordinatorBegin: a transactional batch opens a transaction
// only once the coordinator began it here at the producer's epoch; the
// last stable offset stays at its first offset until the marker; a plain
// batch of that producer meanwhile, and a late batch after the marker, are
// refused (KIP-890).
func TestTxnNeedsCoordinatorBegin(t *testing.T) {
	p := open(t, vfs.NewMem())
	defer p.Close()
	if _, err := p.Append(txnBatch(t, 1, 0, 0, 2, "a")); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("batch before the coordinator began the transaction: %v, want ErrInvalidTxnState", err)
	}
	begin(t, p, 1, 1)
	if _, err := p.Append(txnBatch(t, 1, 0, 0, 2, "a")); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("batch of an epoch the coordinator did not begin: %v, want ErrInvalidTxnState", err)
	}
	begin(t, p, 1, 0)
	appendTxn(t, p, txnBatch(t, 1, 0, 0, 2, "a"))
	appendTxn(t, p, produce(t, 3, "plain"))
	if lso, hwm := p.LastStableOffset(), p.HighWatermark(); lso != 0 || hwm != 5 {
		t.Fatalf("open transaction at 0: LSO %d HWM %d, want 0 and 5", lso, hwm)
	}
	if _, err := p.Append(idempotent(t, 1, 0, 2, 1)); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("plain batch of a producer in a transaction: %v, want ErrInvalidTxnState", err)
	}
	appendTxn(t, p, txnBatch(t, 1, 0, 2, 1, "a")) // the transaction goes on
	m := endTxn(t, p, 1, 0, true)
	if m.BaseOffset != 6 || p.LastStableOffset() != 7 || p.HighWatermark() != 7 {
		t.Fatalf("marker at %d, LSO %d HWM %d; want 6, 7, 7", m.BaseOffset, p.LastStableOffset(), p.HighWatermark())
	}
	if _, err := p.Append(txnBatch(t, 1, 0, 3, 1, "a")); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("late batch after the marker: %v, want ErrInvalidTxnState", err)
	}
	if _, err := p.WriteMarker(1, -1, false, 0); err == nil || !errors.Is(err, ErrInvalidRecord) && !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("marker of an older epoch: %v, want refused", err)
	}
	if _, err := p.Append(batch.EncodeMarker(1, 0, batch.ControlCommit, 0, 1)); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("a control batch from a producer: %v, want ErrInvalidRecord", err)
	}
	// The next transaction of the same epoch, begun again, continues the sequence.
	begin(t, p, 1, 0)
	appendTxn(t, p, txnBatch(t, 1, 0, 3, 1, "a"))
	if p.LastStableOffset() != 7 {
		t.Fatalf("second transaction at 7: LSO %d", p.LastStableOffset())
	}
}

// TestTxnAbortedIndexAndReadCommitted: read_committed reads stop at the
// oldest open transaction and list the aborted transactions their records
// overlap; read_uncommitted reads see everything and list none.
func TestTxnAbortedIndexAndReadCommitted(t *testing.T) {
	p := open(t, vfs.NewMem())
	defer p.Close()
	begin(t, p, 1, 0)
	begin(t, p, 2, 0)
	appendTxn(t, p, txnBatch(t, 1, 0, 0, 2, "a")) // 0-1
	appendTxn(t, p, txnBatch(t, 2, 0, 0, 2, "b")) // 2-3
	endTxn(t, p, 1, 0, false)                     // 4
	if lso := p.LastStableOffset(); lso != 2 {
		t.Fatalf("LSO %d, want 2 (producer 2's transaction is open)", lso)
	}
	res, _, err := p.ReadAppendIsolated(nil, 0, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	if end := recordsEnd(res.Records); end != 2 || res.LastStableOffset != 2 {
		t.Fatalf("read_committed read up to %d, LSO %d; want 2, 2", end, res.LastStableOffset)
	}
	want := []AbortedTxn{{ProducerID: 1, FirstOffset: 0, LastOffset: 4}}
	if !reflect.DeepEqual(res.Aborted, want) {
		t.Fatalf("aborted %+v, want %+v", res.Aborted, want)
	}
	endTxn(t, p, 2, 0, true) // 5
	res, _, err = p.ReadAppendIsolated(nil, 0, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	if end := recordsEnd(res.Records); end != 6 || res.LastStableOffset != 6 || !reflect.DeepEqual(res.Aborted, want) {
		t.Fatalf("after the commit: read up to %d, LSO %d, aborted %+v", end, res.LastStableOffset, res.Aborted)
	}
	if res, _, err = p.ReadAppendIsolated(nil, 5, 1<<20, true); err != nil || res.Aborted != nil {
		t.Fatalf("read past the abort marker lists %+v (err %v), want none", res.Aborted, err)
	}
	res, _, err = p.ReadAppendIsolated(nil, 0, 1<<20, false)
	if err != nil || recordsEnd(res.Records) != 6 || res.Aborted != nil {
		t.Fatalf("read_uncommitted: up to %d, aborted %+v, err %v", recordsEnd(res.Records), res.Aborted, err)
	}
}

// TestTxnStateSurvivesRestart: open transactions and the aborted index
// come back after a restart, from the producer-state snapshot and, when it
// is lost, from the log alone.
func TestTxnStateSurvivesRestart(t *testing.T) {
	fsys := vfs.NewMem()
	p := open(t, fsys)
	begin(t, p, 1, 0)
	begin(t, p, 2, 0)
	appendTxn(t, p, txnBatch(t, 1, 0, 0, 2, "a")) // 0-1
	endTxn(t, p, 1, 0, false)                     // 2
	appendTxn(t, p, txnBatch(t, 2, 0, 0, 2, "b")) // 3-4
	check := func(p *Partition, how string) {
		t.Helper()
		if lso := p.LastStableOffset(); lso != 3 {
			t.Fatalf("%s: LSO %d, want 3", how, lso)
		}
		want := []AbortedTxn{{ProducerID: 1, FirstOffset: 0, LastOffset: 2}}
		if got := p.AbortedTransactions(0, 10); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: aborted %+v, want %+v", how, got, want)
		}
	}
	check(p, "before the restart")
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p = open(t, fsys)
	check(p, "after a restart")
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Remove(path.Join("/data/t-0", producerStateFile)); err != nil {
		t.Fatal(err)
	}
	p = open(t, fsys)
	defer p.Close()
	check(p, "rebuilt from the log")
	// Producer 2's open transaction goes on without a new begin, and ends.
	appendTxn(t, p, txnBatch(t, 2, 0, 2, 1, "b"))
	endTxn(t, p, 2, 0, true)
	if lso, hwm := p.LastStableOffset(), p.HighWatermark(); lso != hwm {
		t.Fatalf("after the commit LSO %d, HWM %d", lso, hwm)
	}
}

// TestTxnMarkerOfOlderCoordinatorFenced: a single-node partition refuses a
// marker from a coordinator epoch below the one of the producer's last
// marker, also after a restart with and without the producer snapshot
// (the epoch is replayed from the markers), and the open transaction
// stays open until the newer coordinator's marker.
func TestTxnMarkerOfOlderCoordinatorFenced(t *testing.T) {
	fsys := vfs.NewMem()
	p := open(t, fsys)
	begin(t, p, 1, 0)
	appendTxn(t, p, txnBatch(t, 1, 0, 0, 1, "a"))
	res, err := p.WriteMarker(1, 0, true, 5)
	if err != nil {
		t.Fatal(err)
	}
	waitAppended(t, p, res)
	begin(t, p, 1, 0)
	second := appendTxn(t, p, txnBatch(t, 1, 0, 1, 1, "a"))
	fenced := func(p *Partition, how string) {
		t.Helper()
		if _, err := p.WriteMarker(1, 0, false, 4); !errors.Is(err, ErrTransactionCoordinatorFenced) {
			t.Fatalf("%s: marker of coordinator epoch 4 after 5: %v, want ErrTransactionCoordinatorFenced", how, err)
		}
		if lso := p.LastStableOffset(); lso != second.BaseOffset {
			t.Fatalf("%s: LSO %d, want the open transaction's %d", how, lso, second.BaseOffset)
		}
	}
	fenced(p, "before a restart")
	for _, dropSnapshot := range []bool{false, true} {
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if dropSnapshot {
			if err := fsys.Remove(path.Join("/data/t-0", producerStateFile)); err != nil {
				t.Fatal(err)
			}
		}
		p = open(t, fsys)
		fenced(p, fmt.Sprintf("after a restart (producer snapshot dropped: %v)", dropSnapshot))
	}
	defer p.Close()
	res, err = p.WriteMarker(1, 0, true, 6)
	if err != nil {
		t.Fatal(err)
	}
	waitAppended(t, p, res)
	if lso, hwm := p.LastStableOffset(), p.HighWatermark(); lso != hwm {
		t.Fatalf("after the newer coordinator's marker: LSO %d, HWM %d", lso, hwm)
	}
}

// TestTxnCompactionDropsAbortedKeepsMarkers: compaction removes the
// records of aborted transactions, never lets an open transaction's
// records replace older ones, and keeps every marker.
func TestTxnCompactionDropsAbortedKeepsMarkers(t *testing.T) {
	p := open(t, vfs.NewMem(), func(c *Config) {
		c.Compact, c.DeleteSegments = true, false
		c.Storage.SegmentBytes = 200
	})
	defer p.Close()
	plain := func(key, value string) []byte {
		return batch.Build([]batch.Record{{TimestampMs: time.Now().UnixMilli(), Key: []byte(key), Value: []byte(value)}}, batch.None)
	}
	appendTxn(t, p, plain("k", "committed-before"))
	begin(t, p, 1, 0)
	appendTxn(t, p, txnBatch(t, 1, 0, 0, 1, "k")) // aborted: must not replace k
	endTxn(t, p, 1, 0, false)
	begin(t, p, 2, 0)
	appendTxn(t, p, txnBatch(t, 2, 0, 0, 1, "j"))
	endTxn(t, p, 2, 0, true)
	for i := 0; i < 10; i++ { // fill segments so the ones above are sealed
		appendTxn(t, p, plain(fmt.Sprintf("x%d", i), "x"))
	}
	if err := p.Clean(time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	var values []string
	markers := 0
	for from := int64(0); from < p.HighWatermark(); {
		res, err := p.Read(from, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		data := res.Records
		for len(data) > 0 {
			h, whole, rest, err := batch.Next(data)
			if err != nil {
				t.Fatal(err)
			}
			if h.Control() {
				markers++
			} else {
				eachRecord(t, whole, func(r batch.Record) { values = append(values, string(r.Value)) })
			}
			from, data = h.NextOffset(), rest
		}
	}
	if markers != 2 {
		t.Fatalf("%d markers left, want 2", markers)
	}
	for _, v := range values {
		if v == "p1-0" {
			t.Fatalf("the aborted record survived compaction: %v", values)
		}
	}
	if values[0] != "committed-before" || values[1] != "p2-0" {
		t.Fatalf("values %v: the committed ones must stay", values)
	}
}

// TestTxnCompactionRemovesSpentCommitMarkers: once no batch of a committed
// transaction is left and delete.retention.ms has passed, compaction
// removes its COMMIT marker; the marker of a transaction with a batch left
// stays, and producer state rebuilt from the compacted log has no
// transaction open (the last stable offset is the high watermark).
func TestTxnCompactionRemovesSpentCommitMarkers(t *testing.T) {
	fsys := vfs.NewMem()
	edit := func(c *Config) {
		c.Compact, c.DeleteSegments, c.DeleteRetentionMs = true, false, 0
		c.Storage.SegmentBytes = 200
	}
	p := open(t, fsys, edit)
	plain := func(key string) []byte {
		return batch.Build([]batch.Record{{TimestampMs: time.Now().UnixMilli(), Key: []byte(key), Value: []byte("plain")}}, batch.None)
	}
	begin(t, p, 2, 0)
	appendTxn(t, p, txnBatch(t, 2, 0, 0, 1, "j")) // 0: replaced below
	spent := endTxn(t, p, 2, 0, true)             // 1
	begin(t, p, 2, 0)
	appendTxn(t, p, txnBatch(t, 2, 0, 1, 1, "k")) // 2: kept
	kept := endTxn(t, p, 2, 0, true)              // 3
	appendTxn(t, p, plain("j"))
	for i := 0; i < 10; i++ {
		appendTxn(t, p, plain(fmt.Sprintf("x%d", i)))
	}
	if err := p.Clean(time.Now().UnixMilli() + 1000); err != nil {
		t.Fatal(err)
	}
	markers := map[int64]bool{}
	for from := int64(0); from < p.HighWatermark(); {
		res, err := p.Read(from, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for data := res.Records; len(data) > 0; {
			h, _, rest, err := batch.Next(data)
			if err != nil {
				t.Fatal(err)
			}
			if h.Control() {
				markers[h.BaseOffset] = true
			}
			from, data = h.NextOffset(), rest
		}
	}
	if markers[spent.BaseOffset] || !markers[kept.BaseOffset] {
		t.Fatalf("markers left at %v: want %d removed and %d kept", markers, spent.BaseOffset, kept.BaseOffset)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Remove(path.Join("/data/t-0", producerStateFile)); err != nil {
		t.Fatal(err)
	}
	p = open(t, fsys, edit)
	defer p.Close()
	if lso, hwm := p.LastStableOffset(), p.HighWatermark(); lso != hwm {
		t.Fatalf("rebuilt from the compacted log: LSO %d, HWM %d", lso, hwm)
	}
}

// TestTxnStableOffsetNotBelowLogStart: when DeleteRecords removes the first
// batch of an open transaction, the last stable offset is the log start
// (read_committed consumers wait there, as in Kafka), not an offset below
// it that no fetch can reach.
func TestTxnStableOffsetNotBelowLogStart(t *testing.T) {
	p := open(t, vfs.NewMem())
	defer p.Close()
	appendTxn(t, p, produce(t, 2, "before")) // 0-1
	begin(t, p, 1, 0)
	appendTxn(t, p, txnBatch(t, 1, 0, 0, 2, "a")) // 2-3
	appendTxn(t, p, produce(t, 2, "after"))       // 4-5
	if _, err := p.DeleteRecordsBefore(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	if lso := p.LastStableOffset(); lso != 3 {
		t.Fatalf("LSO %d, want the log start 3", lso)
	}
	endTxn(t, p, 1, 0, true)
	if lso, hwm := p.LastStableOffset(), p.HighWatermark(); lso != hwm {
		t.Fatalf("after the commit LSO %d, HWM %d", lso, hwm)
	}
}

// TestTxnMarkerDuringVerificationRefusesBegin: a marker written while the
// coordinator is being asked ends the verification, so the coordinator's
// yes (true before the marker) cannot open a transaction after it: the
// late batch is refused (Kafka's verification guard, KIP-890).
func TestTxnMarkerDuringVerificationRefusesBegin(t *testing.T) {
	p := open(t, vfs.NewMem())
	defer p.Close()
	begin(t, p, 1, 0)
	appendTxn(t, p, txnBatch(t, 1, 0, 0, 1, "a"))
	guard, err := p.VerifyStart(1) // a second produce asks the coordinator
	if err != nil {
		t.Fatal(err)
	}
	endTxn(t, p, 1, 0, false) // the coordinator aborts meanwhile
	if err := p.BeginTransaction(1, 0, guard); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("begin after the marker: %v, want ErrInvalidTxnState", err)
	}
	if _, err := p.Append(txnBatch(t, 1, 0, 1, 1, "a")); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("the late batch: %v, want ErrInvalidTxnState", err)
	}
	abandoned, err := p.VerifyStart(2)
	if err != nil {
		t.Fatal(err)
	}
	p.VerifyAbandon(2, abandoned)
	if err := p.BeginTransaction(2, 0, abandoned); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("begin of an abandoned verification: %v", err)
	}
}

// TestProducerSnapshotCarriesTransactions: the producer-state file (and a
// replica's snapshot, the same bytes) keeps open transactions and the
// aborted index; expiry keeps a producer whose transaction is open.
func TestProducerSnapshotCarriesTransactions(t *testing.T) {
	s := newProducerState()
	txnHdr := func(pid int64, seq int32, base int64) batch.Header {
		h := hdr(pid, 0, seq, 1, base)
		h.Attributes = batch.TransactionalAttribute
		return h
	}
	control := func(pid int64, base int64) batch.Header {
		return batch.Header{ProducerID: pid, BaseOffset: base, BaseSequence: -1, Attributes: 0x30}
	}
	s.record(txnHdr(1, 0, 0), 10)
	s.recordBatch(control(1, 1), marker{kind: markerAbort, coordinatorEpoch: 4}, 10)
	s.record(txnHdr(2, 0, 2), 10)
	data, err := s.marshal(3)
	if err != nil {
		t.Fatal(err)
	}
	got, next, err := unmarshalProducerState(data, 20)
	if err != nil || next != 3 {
		t.Fatalf("decode: next %d, %v", next, err)
	}
	if got.firstOpen() != 2 || !reflect.DeepEqual(got.aborted, []AbortedTxn{{ProducerID: 1, FirstOffset: 0, LastOffset: 1}}) {
		t.Fatalf("decoded first open %d, aborted %+v", got.firstOpen(), got.aborted)
	}
	if e := got.producers[1]; e.CoordinatorEpoch == nil || *e.CoordinatorEpoch != 4 {
		t.Fatalf("decoded producer 1 %+v: want the marker's coordinator epoch 4", e)
	}
	if n := got.expire(1_000_000, 100); n != 1 || !got.open(2) {
		t.Fatalf("expiry forgot %d producers, producer 2 open %v: want 1 forgotten and 2 kept", n, got.open(2))
	}
}

// TestTxnCompactionRemovesSpentAbortMarkers: an aborted transaction's
// records go at the first pass; its ABORT marker stays that pass (its
// transaction still had a batch stored) and goes at the next, once
// delete.retention.ms passed, with its aborted-index entry. The producer's
// next transaction, committed, is then read by read_committed from the
// start with no aborted transaction listed, and the index stays without
// the entry across a power cut right after the pass, and when producer
// state is rebuilt from the log; the first pass leaves the entry in the
// producer-state file, which the second must make durable without it.
func TestTxnCompactionRemovesSpentAbortMarkers(t *testing.T) {
	cfs := vfs.NewCrashFS()
	edit := func(c *Config) {
		c.Compact, c.DeleteSegments, c.DeleteRetentionMs = true, false, 0
		c.Storage.SegmentBytes = 200
	}
	p := open(t, cfs, edit)
	plain := func(key string) []byte {
		return batch.Build([]batch.Record{{TimestampMs: time.Now().UnixMilli(), Key: []byte(key), Value: []byte("plain")}}, batch.None)
	}
	begin(t, p, 1, 0)
	appendTxn(t, p, txnBatch(t, 1, 0, 0, 1, "a")) // 0: aborted
	abort := endTxn(t, p, 1, 0, false)            // 1
	begin(t, p, 1, 0)
	appendTxn(t, p, txnBatch(t, 1, 0, 1, 1, "b")) // 2: committed
	endTxn(t, p, 1, 0, true)                      // 3
	for i := 0; i < 10; i++ {
		appendTxn(t, p, plain(fmt.Sprintf("x%d", i)))
	}
	markerLeft := func(p *Partition) bool {
		res, err := p.Read(abort.BaseOffset, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		h, _, _, err := batch.Next(res.Records)
		if err != nil {
			t.Fatal(err)
		}
		return h.BaseOffset == abort.BaseOffset && h.Control()
	}
	want := []AbortedTxn{{ProducerID: 1, FirstOffset: 0, LastOffset: abort.BaseOffset}}
	if err := p.Clean(time.Now().UnixMilli() + 1000); err != nil {
		t.Fatal(err)
	}
	if !markerLeft(p) || !reflect.DeepEqual(p.AbortedTransactions(0, p.HighWatermark()), want) {
		t.Fatalf("after the first pass: marker left %v, aborted %+v; want the marker and %+v",
			markerLeft(p), p.AbortedTransactions(0, p.HighWatermark()), want)
	}
	// Closed and opened again: the producer-state file on disk names the
	// aborted transaction.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p = open(t, cfs, edit)
	if err := p.Clean(time.Now().UnixMilli() + 1000); err != nil {
		t.Fatal(err)
	}
	check := func(when string, p *Partition) {
		t.Helper()
		if markerLeft(p) {
			t.Fatalf("%s: the ABORT marker at %d is left", when, abort.BaseOffset)
		}
		if got := p.AbortedTransactions(0, p.HighWatermark()); len(got) != 0 {
			t.Fatalf("%s: aborted index %+v, want empty", when, got)
		}
		res, _, err := p.ReadAppendIsolated(nil, 0, 1<<20, true)
		if err != nil {
			t.Fatal(err)
		}
		if res.Aborted != nil || res.LastStableOffset != p.HighWatermark() {
			t.Fatalf("%s: read_committed lists %+v, LSO %d, HWM %d", when, res.Aborted, res.LastStableOffset, p.HighWatermark())
		}
		var values []string
		for data := res.Records; len(data) > 0; {
			h, whole, rest, err := batch.Next(data)
			if err != nil {
				t.Fatal(err)
			}
			if !h.Control() {
				eachRecord(t, whole, func(r batch.Record) { values = append(values, string(r.Value)) })
			}
			data = rest
		}
		if len(values) == 0 || values[0] != "p1-1" || slices.Contains(values, "p1-0") {
			t.Fatalf("%s: read_committed read %v, want p1-1 first and no p1-0", when, values)
		}
	}
	check("after the second pass", p)

	crashed := cfs.Crash(vfs.CrashOptions{})
	_ = p.Close() // the old process is gone; its files are never looked at again
	p = open(t, crashed, edit)
	check("after a power cut", p)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := crashed.Remove(path.Join("/data/t-0", producerStateFile)); err != nil {
		t.Fatal(err)
	}
	p = open(t, crashed, edit)
	defer p.Close()
	check("rebuilt from the log", p)
}

// TestTxnCompactionDropsEntriesWhoseMarkerIsGone: producer state naming an
// aborted transaction whose ABORT marker is no longer in the log (here the
// producer-state file of before the marker's removal put back, as a
// replica gets when it installs a snapshot taken before its leader removed
// the marker and copies the data after) loses that entry at the next
// compaction pass: it would make read_committed clients drop the
// producer's later records.
func TestTxnCompactionDropsEntriesWhoseMarkerIsGone(t *testing.T) {
	fsys := vfs.NewMem()
	edit := func(c *Config) {
		c.Compact, c.DeleteSegments, c.DeleteRetentionMs = true, false, 0
		c.Storage.SegmentBytes = 200
	}
	p := open(t, fsys, edit)
	plain := func(key string) []byte {
		return batch.Build([]batch.Record{{TimestampMs: time.Now().UnixMilli(), Key: []byte(key), Value: []byte("plain")}}, batch.None)
	}
	begin(t, p, 1, 0)
	appendTxn(t, p, txnBatch(t, 1, 0, 0, 1, "a"))
	abort := endTxn(t, p, 1, 0, false)
	begin(t, p, 1, 0) // the producer's last batch is this transaction's
	appendTxn(t, p, txnBatch(t, 1, 0, 1, 1, "b"))
	endTxn(t, p, 1, 0, true)
	for i := 0; i < 10; i++ {
		appendTxn(t, p, plain(fmt.Sprintf("x%d", i)))
	}
	state := path.Join("/data/t-0", producerStateFile)
	cleanAndClose := func(p *Partition) {
		t.Helper()
		if err := p.Clean(time.Now().UnixMilli() + 1000); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
	cleanAndClose(p) // the records go
	stale, err := vfs.ReadFile(fsys, state)
	if err != nil {
		t.Fatal(err)
	}
	cleanAndClose(open(t, fsys, edit)) // the marker and the entry go
	if err := vfs.WriteFileAtomic(fsys, state, stale); err != nil {
		t.Fatal(err)
	}
	p = open(t, fsys, edit)
	defer p.Close()
	want := []AbortedTxn{{ProducerID: 1, FirstOffset: 0, LastOffset: abort.BaseOffset}}
	if got := p.AbortedTransactions(0, p.HighWatermark()); !reflect.DeepEqual(got, want) {
		t.Fatalf("the stale producer state gives the aborted index %+v, want %+v", got, want)
	}
	if err := p.Clean(time.Now().UnixMilli() + 1000); err != nil {
		t.Fatal(err)
	}
	if got := p.AbortedTransactions(0, p.HighWatermark()); len(got) != 0 {
		t.Fatalf("after a pass: aborted index %+v, want empty (marker %d is gone)", got, abort.BaseOffset)
	}
}
