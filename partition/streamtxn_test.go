package partition

import (
	"context"
	"errors"
	"path"
	"testing"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
	"github.com/cairnlog/cairn/streams"
)

// streamEvent is an event of stream with id, checked against expected.
func streamEvent(stream, id, expected string) batch.Record {
	return batch.Record{Key: []byte(stream), Value: []byte("{}"), Headers: []batch.RecordHeader{
		{Key: streams.HeaderExpectedRevision, Value: []byte(expected)},
		{Key: streams.HeaderID, Value: []byte(id)},
	}}
}

// streamTxnBatch is producer pid's transactional batch of recs.
func streamTxnBatch(t *testing.T, pid int64, seq int32, recs ...batch.Record) []byte {
	t.Helper()
	for i := range recs {
		recs[i].Offset = int64(i)
	}
	b, err := batch.Encode(batch.Header{ProducerID: pid, BaseSequence: seq, Attributes: 0x10}, int32(len(recs)-1), recs, batch.None)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openStreams(t *testing.T, fsys vfs.FS) *Partition {
	t.Helper()
	return open(t, fsys, func(c *Config) { c.DeleteSegments, c.Streams = false, true })
}

func revisionOf(t *testing.T, p *Partition, stream string) int64 {
	t.Helper()
	x, err := p.StreamIndex()
	if err != nil {
		t.Fatal(err)
	}
	st, err := x.State(stream)
	if err != nil {
		t.Fatal(err)
	}
	return st.LastRevision
}

func wantRevisions(t *testing.T, p *Partition, how string, want map[string]int64) {
	t.Helper()
	for stream, rev := range want {
		if got := revisionOf(t, p, stream); got != rev {
			t.Fatalf("%s: stream %s at revision %d, want %d", how, stream, got, rev)
		}
	}
}

// TestStreamTxnHeldUntilMarker: a transaction's events on a stream topic
// get their revisions when written, but the index shows them only at the
// COMMIT marker, and an ABORT marker drops them; meanwhile the streams
// they touch refuse other writes (ErrStreamBusy). A restart between the
// transaction's records and its marker, after a later append moved the
// index past those records, holds them again; a rebuilt index agrees.
func TestStreamTxnHeldUntilMarker(t *testing.T) {
	fsys := vfs.NewMem()
	p := openStreams(t, fsys)
	if _, err := p.Append(batch.Build([]batch.Record{streamEvent("a", "a0", "no-stream")}, batch.None)); err != nil {
		t.Fatal(err)
	}
	begin(t, p, 1, 0)
	res := appendTxn(t, p, streamTxnBatch(t, 1, 0, streamEvent("a", "a1", "0"), streamEvent("b", "b0", "no-stream")))
	if got := res.Streams; len(got) != 2 || got[0].First != 1 || got[1].First != 0 {
		t.Fatalf("transactional append gave %+v, want a at 1 and b at 0", got)
	}
	wantRevisions(t, p, "before the marker", map[string]int64{"a": 0, "b": -1})
	if _, err := p.Append(batch.Build([]batch.Record{streamEvent("a", "x", "any")}, batch.None)); !errors.Is(err, ErrStreamBusy) {
		t.Fatalf("appending to a held stream: %v, want ErrStreamBusy", err)
	}
	appendTxn(t, p, batch.Build([]batch.Record{streamEvent("c", "c0", "no-stream")}, batch.None))
	// Readers of a held stream wait for the marker; others do not.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.WaitStreamFree(done, "a"); !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting for held stream a: %v, want to wait until cancelled", err)
	}
	if err := p.WaitStreamFree(done, "c"); err != nil {
		t.Fatalf("waiting for free stream c: %v", err)
	}

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p = openStreams(t, fsys)
	wantRevisions(t, p, "reopened before the marker", map[string]int64{"a": 0, "b": -1, "c": 0})
	if _, err := p.Append(batch.Build([]batch.Record{streamEvent("b", "x", "any")}, batch.None)); !errors.Is(err, ErrStreamBusy) {
		t.Fatalf("appending to a held stream after a restart: %v, want ErrStreamBusy", err)
	}
	endTxn(t, p, 1, 0, true)
	wantRevisions(t, p, "after COMMIT", map[string]int64{"a": 1, "b": 0, "c": 0})
	if err := p.WaitStreamFree(done, "a"); err != nil {
		t.Fatalf("waiting for stream a after the COMMIT: %v", err)
	}

	// An aborted transaction leaves its streams as they were, and free.
	begin(t, p, 2, 0)
	appendTxn(t, p, streamTxnBatch(t, 2, 0, streamEvent("b", "b1", "0")))
	endTxn(t, p, 2, 0, false)
	wantRevisions(t, p, "after ABORT", map[string]int64{"b": 0})
	appendTxn(t, p, batch.Build([]batch.Record{streamEvent("b", "b1-plain", "0")}, batch.None))
	final := map[string]int64{"a": 1, "b": 1, "c": 0}
	wantRevisions(t, p, "after the aborted transaction", final)

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p = openStreams(t, fsys)
	wantRevisions(t, p, "reopened", final)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.RemoveAll(path.Join("/data/t-0", streamIndexDir)); err != nil {
		t.Fatal(err)
	}
	p = openStreams(t, fsys)
	defer p.Close()
	wantRevisions(t, p, "rebuilt from the log", final)
}

// TestStreamTxnWrongExpectationRefused: a transactional batch whose
// expectation fails is refused with the stream's revision, holding
// nothing; the transaction's later batch continues from what it holds.
func TestStreamTxnWrongExpectationRefused(t *testing.T) {
	p := openStreams(t, vfs.NewMem())
	defer p.Close()
	begin(t, p, 1, 0)
	_, err := p.Append(streamTxnBatch(t, 1, 0, streamEvent("a", "a0", "3")))
	var wrong *streams.WrongExpectedRevisionError
	if !errors.As(err, &wrong) || wrong.Actual != -1 {
		t.Fatalf("wrong expectation: %v, want a WrongExpectedRevisionError with no revision", err)
	}
	appendTxn(t, p, streamTxnBatch(t, 1, 0, streamEvent("a", "a0", "no-stream")))
	res := appendTxn(t, p, streamTxnBatch(t, 1, 1, streamEvent("a", "a1", "0")))
	if got := res.Streams; len(got) != 1 || got[0].First != 1 {
		t.Fatalf("second batch of the transaction gave %+v, want a at 1", got)
	}
	endTxn(t, p, 1, 0, true)
	wantRevisions(t, p, "after COMMIT", map[string]int64{"a": 1})
}
