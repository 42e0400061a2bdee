package transport

import (
	"bytes"
	"errors"
	"testing"
)

func TestSnapshotReadRoundTrip(t *testing.T) {
	r := SnapshotRead{Group: 42, Index: 1 << 40, Term: 7, Offset: 123456789, MaxBytes: 1 << 20}
	b := AppendSnapshotRead([]byte("x"), r)
	if len(b) != 1+snapshotReadBytes {
		t.Fatalf("%d bytes, want %d", len(b), 1+snapshotReadBytes)
	}
	got, err := ParseSnapshotRead(b[1:])
	if err != nil || got != r {
		t.Fatalf("%+v, %v; want %+v", got, err, r)
	}
}

func TestSnapshotReadMalformed(t *testing.T) {
	valid := SnapshotRead{Group: 1, Index: 2, Term: 3, Offset: 4, MaxBytes: 5}
	for name, r := range map[string]SnapshotRead{
		"zero index":     {Group: 1, Term: 3, Offset: 4, MaxBytes: 5},
		"zero term":      {Group: 1, Index: 2, Offset: 4, MaxBytes: 5},
		"negative":       {Group: 1, Index: 2, Term: 3, Offset: -1, MaxBytes: 5},
		"zero max bytes": {Group: 1, Index: 2, Term: 3, Offset: 4},
	} {
		if _, err := ParseSnapshotRead(AppendSnapshotRead(nil, r)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	b := AppendSnapshotRead(nil, valid)
	for _, in := range [][]byte{b[:len(b)-1], append(bytes.Clone(b), 0), nil} {
		if _, err := ParseSnapshotRead(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d bytes: %v, want ErrMalformed", len(in), err)
		}
	}
}

func TestSnapshotChunkRoundTrip(t *testing.T) {
	for _, c := range []SnapshotChunk{
		{Group: 9, Index: 100, Term: 4, Offset: 10, Next: 25, Batches: []byte("batches")},
		{Group: 9, Index: 100, Term: 4, Offset: 10, Next: 30},
		{Group: 9, Index: 100, Term: 4, Offset: 10, Status: SnapshotChanged},
		{Group: 9, Index: 100, Term: 4, Offset: 0, Status: SnapshotUnavailable},
	} {
		b := AppendSnapshotChunk(nil, c)
		if len(b) != snapshotChunkHeaderBytes+len(c.Batches) {
			t.Fatalf("%+v: %d bytes", c, len(b))
		}
		got, err := ParseSnapshotChunk(b)
		if err != nil || got.Group != c.Group || got.Index != c.Index || got.Term != c.Term || got.Offset != c.Offset ||
			got.Status != c.Status || got.Next != c.Next || !bytes.Equal(got.Batches, c.Batches) {
			t.Fatalf("%+v, %v; want %+v", got, err, c)
		}
	}
}

func TestSnapshotChunkMalformed(t *testing.T) {
	ok := SnapshotChunk{Group: 9, Index: 100, Term: 4, Offset: 10, Next: 25, Batches: []byte("batches")}
	valid := AppendSnapshotChunk(nil, ok)
	lengthAt := snapshotChunkHeaderBytes - 4
	for name, in := range map[string][]byte{
		"short":            valid[:lengthAt+2],
		"data cut":         valid[:len(valid)-1],
		"trailing":         append(bytes.Clone(valid), 0),
		"length too large": func() []byte { b := bytes.Clone(valid); b[lengthAt] = 0xff; return b }(),
		"unknown status":   func() []byte { b := bytes.Clone(valid); b[lengthAt-9] = 3; return b }(),
		"next below read":  AppendSnapshotChunk(nil, SnapshotChunk{Group: 9, Index: 100, Term: 4, Offset: 10, Next: 9}),
		"refusal with data": AppendSnapshotChunk(nil, SnapshotChunk{Group: 9, Index: 100, Term: 4, Offset: 10,
			Status: SnapshotChanged, Batches: []byte("x")}),
		"refusal with next": AppendSnapshotChunk(nil, SnapshotChunk{Group: 9, Index: 100, Term: 4, Offset: 10,
			Status: SnapshotUnavailable, Next: 11}),
		"zero index":      AppendSnapshotChunk(nil, SnapshotChunk{Group: 9, Term: 4, Offset: 10, Next: 11}),
		"negative offset": AppendSnapshotChunk(nil, SnapshotChunk{Group: 9, Index: 100, Term: 4, Offset: -2, Next: 11}),
	} {
		if _, err := ParseSnapshotChunk(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// FuzzSnapshotFrames checks that parsing arbitrary bytes as either
// snapshot frame never panics and fails only with ErrMalformed, and that
// what parses encodes back to the same bytes.
func FuzzSnapshotFrames(f *testing.F) {
	f.Add(AppendSnapshotRead(nil, SnapshotRead{Group: 1, Index: 2, Term: 3, Offset: 4, MaxBytes: 5}))
	f.Add(AppendSnapshotChunk(nil, SnapshotChunk{Group: 1, Index: 2, Term: 3, Offset: 4, Next: 9, Batches: []byte("data")}))
	f.Add(AppendSnapshotChunk(nil, SnapshotChunk{Group: 1, Index: 2, Term: 3, Offset: 4, Status: SnapshotChanged}))
	f.Fuzz(func(t *testing.T, input []byte) {
		if r, err := ParseSnapshotRead(input); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("read: unexpected error %v", err)
			}
		} else if again := AppendSnapshotRead(nil, r); !bytes.Equal(again, input) {
			t.Fatalf("read %+v re-encodes to %x, input %x", r, again, input)
		}
		if c, err := ParseSnapshotChunk(input); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("chunk: unexpected error %v", err)
			}
		} else if again := AppendSnapshotChunk(nil, c); !bytes.Equal(again, input) {
			t.Fatalf("chunk %+v re-encodes to %x, input %x", c, again, input)
		}
	})
}
