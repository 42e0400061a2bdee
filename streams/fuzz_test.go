package streams

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"

	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairnlog/cairn/batch"
)

// FuzzClassify: whatever headers and value a producer sends, classifying a
// record and parsing its expected revision never panic, and an operation
// record that classifies cleanly round-trips its metadata.
func FuzzClassify(f *testing.F) {
	f.Add("metadata", []byte(`{"max_count":3,"max_age_ms":-1,"truncate_before":2}`), "7", "any")
	f.Add("cleaned", []byte{}, "12", "no-stream")
	f.Add("delete", []byte(nil), "", "exists")
	f.Add("bogus", []byte(`{"max_count":-5}`), "-1", "18446744073709551616")
	f.Fuzz(func(t *testing.T, op string, value []byte, revision, expected string) {
		r := batch.Record{Key: []byte("s"), Value: value, Headers: []batch.RecordHeader{
			{Key: HeaderStreamOp, Value: []byte(op)}, {Key: HeaderRevision, Value: []byte(revision)},
		}}
		kind, parsed, err := Classify(r)
		if kind != KindOp {
			t.Fatalf("a keyed record with %s is %v", HeaderStreamOp, kind)
		}
		if err == nil && parsed.Name == OpMetadata {
			again, err := DecodeMetadata(EncodeMetadata(parsed.Metadata))
			if err != nil || again != parsed.Metadata {
				t.Fatalf("metadata %+v round-tripped to %+v, %v", parsed.Metadata, again, err)
			}
		}
		if e, err := ParseExpected(expected); err == nil {
			if again, err := ParseExpected(e.String()); err != nil || again != e {
				t.Fatalf("expected %q parsed to %v, which re-parses to %v %v", expected, e, again, err)
			}
		}
	})
}

// FuzzChecksThenReplay drives the stream checks with records derived from
// the input, commits what they accept, and requires that replaying exactly
// the accepted records rebuilds the same states and entries: the index is a
// pure function of the log.
func FuzzChecksThenReplay(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	f.Add([]byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99})
	f.Fuzz(func(t *testing.T, program []byte) {
		if len(program) > 300 {
			return
		}
		dir := t.TempDir()
		live, err := Open(filepath.Join(dir, "live"), 0, Options{FS: pebblevfs.NewMem()})
		if err != nil {
			t.Fatal(err)
		}
		defer live.Close()
		var accepted []batch.Record
		for i := 0; i+1 < len(program); i += 2 {
			r := fuzzRecord(program[i], program[i+1])
			c := live.NewChange()
			if err := c.Check(r, live.Next()); err != nil {
				continue
			}
			if err := c.Result(); err != nil {
				continue
			}
			if err := live.Commit(c); err != nil {
				t.Fatal(err)
			}
			accepted = append(accepted, r)
		}
		rebuilt, err := Open(filepath.Join(dir, "rebuilt"), 0, Options{FS: pebblevfs.NewMem()})
		if err != nil {
			t.Fatal(err)
		}
		defer rebuilt.Close()
		c := rebuilt.NewChange()
		for i, r := range accepted {
			if err := c.Apply(r, int64(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := rebuilt.Commit(c); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"a", "b", "c"} {
			want, _ := live.State(s)
			got, _ := rebuilt.State(s)
			if got != want {
				t.Fatalf("stream %s: replay %+v, live %+v", s, got, want)
			}
			we, _ := live.Entries(s, 0, false, 1000)
			ge, _ := rebuilt.Entries(s, 0, false, 1000)
			if fmt.Sprint(we) != fmt.Sprint(ge) {
				t.Fatalf("stream %s entries: replay %v, live %v", s, ge, we)
			}
			for i := 1; i < len(we); i++ {
				if we[i].Revision != we[i-1].Revision+1 {
					t.Fatalf("stream %s revisions not contiguous: %v", s, we)
				}
			}
		}
	})
}

// fuzzRecord makes a record from two bytes: the stream, what it is, its id
// and its expected revision.
func fuzzRecord(a, b byte) batch.Record {
	r := batch.Record{Key: []byte{"abc"[a%3]}, Value: []byte("v"), TimestampMs: int64(b)}
	switch a / 3 % 6 {
	case 0:
		r.Key = nil
	case 1:
		r.Headers = append(r.Headers, batch.RecordHeader{Key: HeaderStreamOp, Value: []byte(OpMetadata)})
		r.Value = EncodeMetadata(Metadata{MaxCount: int64(b % 4), MaxAgeMs: -1, TruncateBefore: int64(b%5) - 1})
	case 2:
		op := OpDelete
		if b%7 == 0 {
			op = OpHardDelete
		}
		r.Headers = append(r.Headers, batch.RecordHeader{Key: HeaderStreamOp, Value: []byte(op)})
	}
	if b%2 == 0 {
		r.Headers = append(r.Headers, batch.RecordHeader{Key: HeaderID, Value: []byte(strconv.Itoa(int(b % 16)))})
	}
	switch b / 2 % 5 {
	case 1:
		r.Headers = append(r.Headers, batch.RecordHeader{Key: HeaderExpectedRevision, Value: []byte("any")})
	case 2:
		r.Headers = append(r.Headers, batch.RecordHeader{Key: HeaderExpectedRevision, Value: []byte("no-stream")})
	case 3:
		r.Headers = append(r.Headers, batch.RecordHeader{Key: HeaderExpectedRevision, Value: []byte(strconv.Itoa(int(b % 6)))})
	}
	return r
}
