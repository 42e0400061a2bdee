package partition

import (
	"path/filepath"
	"testing"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/streams"
)

// TestDeadStreamsStopsAtItsListBound: when the first events listed for a
// stream are all dead, the cleaner may remove only up to the last of them:
// the events past the bound were not looked at and may be live.
func TestDeadStreamsStopsAtItsListBound(t *testing.T) {
	x, err := streams.Open(filepath.Join(t.TempDir(), "idx"), 0, streams.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	c := x.NewChange()
	for i := range 10 { // events at offsets 0-9, revisions 0-9
		if err := c.Check(batch.Record{Key: []byte("s"), Value: []byte("{}"), TimestampMs: 1000}, int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	md := streams.NoMetadata
	md.TruncateBefore = 8 // revisions 0-7 dead, 8 and 9 live
	truncate := batch.Record{Key: []byte("s"), Value: streams.EncodeMetadata(md),
		Headers: []batch.RecordHeader{{Key: streams.HeaderStreamOp, Value: []byte(streams.OpMetadata)}}}
	if err := c.Check(truncate, 10); err != nil {
		t.Fatal(err)
	}
	if err := c.Result(); err != nil {
		t.Fatal(err)
	}
	if err := x.Commit(c); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		listMax    int
		wantBefore int64
		wantDead   int
	}{
		{100, 8, 8}, // the first live event bounds the dead prefix
		{5, 5, 5},   // only the five listed are known dead
	} {
		dead, err := deadStreams(x, 2000, tc.listMax)
		if err != nil {
			t.Fatal(err)
		}
		d := dead["s"]
		if d == nil || d.before != tc.wantBefore || len(d.revisions) != tc.wantDead {
			t.Errorf("list bound %d: dead %+v, want %d dead events before offset %d", tc.listMax, d, tc.wantDead, tc.wantBefore)
		}
	}
}
