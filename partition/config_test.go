package partition

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"testing"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
	"github.com/cairnlog/cairn/streams"
)

// TestPolicyChangeDuringAppend: cleanup.policy turns to stream after a
// produce was validated as a plain topic's and before it takes the writer
// lock. The append must be checked as the stream topic it now lands in (its
// event gets revision 0 in the index), never crash on the records it did not
// collect.
func TestPolicyChangeDuringAppend(t *testing.T) {
	p := open(t, vfs.NewMem())
	defer p.Close()
	streamCfg := p.config()
	streamCfg.DeleteSegments, streamCfg.Streams = false, true
	p.afterValidate = func() {
		if err := p.SetConfig(streamCfg); err != nil {
			t.Errorf("set config: %v", err)
		}
	}
	records := batch.Build([]batch.Record{{Key: []byte("order-1"), Value: []byte("{}"),
		Headers: []batch.RecordHeader{{Key: streams.HeaderID, Value: []byte("e1")}}}}, batch.None)
	res := appendWithoutPanic(t, p, records)
	p.afterValidate = nil
	if len(res.Streams) != 1 || res.Streams[0].Stream != "order-1" || res.Streams[0].First != 0 {
		t.Fatalf("append after the switch to stream: streams %+v, want order-1 at revision 0", res.Streams)
	}
}

func appendWithoutPanic(t *testing.T, p *Partition, records []byte) (res AppendResult) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("append panicked: %v", r)
		}
	}()
	res, err := p.Append(records)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestSetConfigReportsLogError: a config the log refuses (here, because it
// is closed) is reported, not dropped.
func TestSetConfigReportsLogError(t *testing.T) {
	p := open(t, vfs.NewMem())
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.RetentionMs = 1000
	if err := p.SetConfig(cfg); err == nil {
		t.Fatal("SetConfig on a closed partition reported no error")
	}
}

// waitIndexBuilt waits for a background stream index build to end.
func waitIndexBuilt(t *testing.T, p *Partition) *streams.Index {
	t.Helper()
	p.mu.Lock()
	b := p.build
	p.mu.Unlock()
	if b != nil {
		<-b.done
	}
	x, err := p.StreamIndex()
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestEnteringStreamBuildsIndexOffLock: turning cleanup.policy to stream on
// a non-empty topic replays its log without the writer lock, so produces go
// on meanwhile; appends needing the index are refused (retriably) until it
// is ready, and the events written during the build are indexed too.
func TestEnteringStreamBuildsIndexOffLock(t *testing.T) {
	p := open(t, vfs.NewMem())
	defer p.Close()
	if err := appendPlainEvents(p, 0, 3*buildTailRecords); err != nil {
		t.Fatal(err)
	}
	cfg := p.config()
	cfg.DeleteSegments, cfg.Streams = false, true
	release := make(chan struct{})
	var chunks, chunksUnlocked int
	p.afterIndexChunk = func() {
		chunks++
		// Another goroutine (a replica applying) may hold the lock for a
		// moment; a replay holding it would hold it for the whole hook.
		for range 200 {
			if p.mu.TryLock() {
				p.mu.Unlock()
				chunksUnlocked++
				break
			}
			time.Sleep(time.Millisecond)
		}
		if chunks == 1 {
			<-release
		}
	}
	setDone := make(chan error, 1)
	go func() { setDone <- p.SetConfig(cfg) }()
	var setErr error
	select {
	case setErr = <-setDone:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("SetConfig waits for the index replay")
	}
	if setErr != nil {
		t.Fatal(setErr)
	}
	// The replay is parked in its first chunk: the writer is free.
	if err := appendPlainEvents(p, 3*buildTailRecords, 1); err != nil {
		t.Fatalf("plain append during the build: %v", err)
	}
	if err := appendEvents(p, 0, 1); !errors.Is(err, ErrStreamIndexBuilding) {
		t.Fatalf("event-store append during the build: %v, want ErrStreamIndexBuilding", err)
	}
	if _, err := p.StreamIndex(); !errors.Is(err, ErrStreamIndexBuilding) {
		t.Fatalf("StreamIndex during the build: %v", err)
	}
	close(release)
	x := waitIndexBuilt(t, p)
	p.afterIndexChunk = nil
	if chunksUnlocked == 0 {
		t.Fatalf("all %d replay chunks ran under the writer lock", chunks)
	}
	st, err := x.State("s-0")
	if err != nil {
		t.Fatal(err)
	}
	// s-0 got every 100th of the 3*4096+1 records.
	if want := int64((3*buildTailRecords+1+99)/100 - 1); st.LastRevision != want {
		t.Fatalf("s-0 at revision %d, want %d", st.LastRevision, want)
	}
	if err := appendEvents(p, 3*buildTailRecords+1, 1); err != nil {
		t.Fatalf("event-store append after the build: %v", err)
	}
}

// TestReturningToStreamKeepsRevisions: a stream topic that left the policy
// (forced), lost a prefix of its log meanwhile, and came back keeps the
// revisions its events had and continues after them.
func TestReturningToStreamKeepsRevisions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ev-0")
	cfg := DefaultConfig()
	cfg.DeleteSegments, cfg.Streams = false, true
	p, err := Open(testEnv(vfs.Default()), dir, "ev", 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := appendEvents(p, 0, 300); err != nil { // s-0 at revisions 0, 1, 2
		t.Fatal(err)
	}
	plain := DefaultConfig()
	if err := p.SetConfig(plain); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.WaitDurable(ctx, p.LogEndOffset()-1); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DeleteRecordsBefore(context.Background(), 150); err != nil {
		t.Fatal(err)
	}
	if err := appendPlainEvents(p, 300, 100); err != nil { // s-0 once more
		t.Fatal(err)
	}
	if err := p.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	x := waitIndexBuilt(t, p)
	st, err := x.State("s-0")
	if err != nil {
		t.Fatal(err)
	}
	if st.LastRevision != 3 {
		t.Fatalf("s-0 at revision %d after returning to stream, want 3 (revisions 0-2 kept, one more event)", st.LastRevision)
	}
	if e, ok, err := x.Entry("s-0", 2); err != nil || !ok || e.Offset != 200 {
		t.Fatalf("s-0 revision 2: %+v %v %v, want offset 200", e, ok, err)
	}
}

// TestIndexBuildFollowsLogStart: a retention pass that began before the
// switch to stream may move the log start while the build reads without the
// writer lock; the build continues from the new start instead of failing the
// partition.
func TestIndexBuildFollowsLogStart(t *testing.T) {
	p := open(t, vfs.NewMem())
	defer p.Close()
	if err := appendPlainEvents(p, 0, 3*buildTailRecords); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.WaitDurable(ctx, p.LogEndOffset()-1); err != nil {
		t.Fatal(err)
	}
	const newStart = 1000
	trimmed := false
	p.afterIndexChunk = func() {
		if !trimmed {
			trimmed = true // as retention would, as the writer, before the first read
			err := p.asWriter(func() error {
				p.mu.Lock()
				defer p.mu.Unlock()
				if err := p.compactRaftBelow(newStart); err != nil {
					return err
				}
				return p.log.AdvanceStartOffset(newStart)
			})
			if err != nil {
				t.Errorf("advance log start: %v", err)
			}
		}
	}
	cfg := p.config()
	cfg.DeleteSegments, cfg.Streams = false, true
	if err := p.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	x := waitIndexBuilt(t, p)
	p.afterIndexChunk = nil
	if err := p.Err(); err != nil {
		t.Fatalf("partition failed by the build: %v", err)
	}
	st, err := x.State("s-0")
	if err != nil {
		t.Fatal(err)
	}
	// s-0 has every 100th record from 1000 on.
	if want := int64((3*buildTailRecords-newStart+99)/100 - 1); st.LastRevision != want {
		t.Fatalf("s-0 at revision %d, want %d", st.LastRevision, want)
	}
}
