package partition

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
	"github.com/cairnlog/cairn/streams"
)

// appendEvents appends n events to streams s-0..s-99 in batches, returning
// the first error.
func appendEvents(p *Partition, from, n int) error {
	return appendKeyed(p, from, n, func(j int) []batch.RecordHeader {
		return []batch.RecordHeader{
			{Key: streams.HeaderExpectedRevision, Value: []byte("any")},
			{Key: streams.HeaderID, Value: []byte(fmt.Sprintf("id-%d", j))},
		}
	})
}

// appendPlainEvents appends n records keyed s-0..s-99 without stream headers,
// as a plain Kafka producer would.
func appendPlainEvents(p *Partition, from, n int) error {
	return appendKeyed(p, from, n, func(int) []batch.RecordHeader { return nil })
}

// appendKeyed appends records from..from+n-1, record j keyed s-(j%100) with
// headers(j), in batches of 500.
func appendKeyed(p *Partition, from, n int, headers func(j int) []batch.RecordHeader) error {
	for i := from; i < from+n; i += 500 {
		recs := make([]batch.Record, 0, 500)
		for j := i; j < min(i+500, from+n); j++ {
			recs = append(recs, batch.Record{Key: []byte(fmt.Sprintf("s-%d", j%100)), Value: []byte("{}"), Headers: headers(j)})
		}
		if _, err := p.Append(batch.Build(recs, batch.None)); err != nil {
			return err
		}
	}
	return nil
}

// TestStreamIndexFailureTakesPartitionOffline: when the index cannot flush
// (its files are gone, as after a full disk or an operator's mistake), the
// partition goes offline instead of pebble retrying without pause, and the
// next open rebuilds the index from the intact log.
func TestStreamIndexFailureTakesPartitionOffline(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ev-0")
	cfg := DefaultConfig()
	cfg.DeleteSegments, cfg.Streams = false, true
	p, err := Open(testEnv(vfs.Default()), dir, "ev", 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := appendEvents(p, 0, 1000); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, streamIndexDir)); err != nil {
		t.Fatal(err)
	}
	// Enough index entries to fill a memtable and force a flush, which fails.
	deadline := time.Now().Add(30 * time.Second)
	written := 1000
	for p.Err() == nil && time.Now().Before(deadline) && written < 400_000 {
		if err := appendEvents(p, written, 5000); err != nil {
			break
		}
		written += 5000
	}
	for p.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !errors.Is(p.Err(), ErrStorageFailed) {
		t.Fatalf("partition still online after its index failed (%d events written): %v", written, p.Err())
	}
	if _, err := p.StreamIndex(); err == nil {
		t.Fatal("the failed index is still served")
	}
	if err := appendEvents(p, written, 1); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("append after the failure: %v", err)
	}
	_ = p.Close()

	p, err = Open(testEnv(vfs.Default()), dir, "ev", 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	durable := p.HighWatermark() // what reached the log before the failure, now synced
	x, err := p.StreamIndex()
	if err != nil {
		t.Fatal(err)
	}
	st, err := x.State("s-7")
	if err != nil {
		t.Fatal(err)
	}
	// Every durable record of s-7 is counted again: offsets 7, 107, ...
	if want := (durable-7+99)/100 - 1; st.LastRevision != want {
		t.Fatalf("s-7 rebuilt at revision %d, want %d (%d durable records)", st.LastRevision, want, durable)
	}
}

// TestStreamReplayPastACleanedTail: a stream index replay over a range a
// cleaner emptied up to its end (as TestReplayProducersPastACleanedTail)
// finds nothing to replay there, which is no error.
func TestStreamReplayPastACleanedTail(t *testing.T) {
	p := open(t, vfs.NewMem(), func(c *Config) {
		c.DeleteSegments, c.Streams = false, true
		c.Storage.SegmentBytes = 300
	})
	defer p.Close()
	for i := 0; i < 40 && len(p.log.Segments()) < 3; i++ {
		if err := appendEvents(p, i, 1); err != nil {
			t.Fatal(err)
		}
	}
	segs := p.log.Segments()
	if len(segs) < 3 {
		t.Fatalf("%d segments, want at least 3", len(segs))
	}
	cleaned := segs[1]
	if err := p.log.ReplaceSegment(cleaned.BaseOffset, nil); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	x := p.streamIdx
	p.mu.Unlock()
	if err := p.replayIndex(x, streams.NewPending(), cleaned.BaseOffset, cleaned.NextOffset, p.cfg.Limits, nil, false); err != nil {
		t.Fatalf("replay over [%d, %d), emptied by a cleaner: %v", cleaned.BaseOffset, cleaned.NextOffset, err)
	}
}
