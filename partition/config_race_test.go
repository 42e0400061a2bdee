package partition

import (
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
