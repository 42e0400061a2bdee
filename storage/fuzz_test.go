package storage

import (
	"bytes"
	"testing"

	"github.com/cairnlog/cairn/storage/vfs"
)

// fuzzRecoveryLog writes a closed log of five batches (offsets 0..9) and
// returns its filesystem, batches and active segment.
func fuzzRecoveryLog(t *testing.T) (vfs.FS, [][]byte) {
	fsys := vfs.NewMem()
	l := mustOpen(t, fsys, "p", Config{SegmentBytes: 1 << 20, SegmentMs: 1 << 40, IndexIntervalBytes: 100}, 0)
	batches := appendN(t, l, 5, 2, 50, 0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return fsys, batches
}

// FuzzRecover feeds arbitrary bytes after the recovery point, either at the
// end of the active segment (first byte even) or as a later segment file
// (first byte odd), and checks that Open never fails or panics, keeps every
// batch before the recovery point, only ever truncates what it was given,
// and leaves a log Verify finds whole.
func FuzzRecover(f *testing.F) {
	f.Add([]byte{0})
	f.Add(append([]byte{0}, makeBatch(10, 1, 5, 0)...))
	f.Add(append([]byte{1}, makeBatch(10, 3, 5, 0)...))
	f.Fuzz(func(t *testing.T, input []byte) {
		if len(input) == 0 {
			return
		}
		fsys, batches := fuzzRecoveryLog(t)
		name := "p/" + segmentFileName(0, logSuffix)
		if input[0]%2 == 1 {
			name = "p/" + segmentFileName(10, logSuffix)
		}
		f, err := fsys.OpenAppend(name)
		if err != nil {
			f, err = fsys.Create(name)
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(input[1:]); err != nil {
			t.Fatal(err)
		}
		f.Close()
		before, _ := vfs.ReadFile(fsys, name)

		l, err := Open(fsys, "p", testConfig(), 0)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer l.Close()
		got := readAll(t, l, 0)
		if len(got) < len(batches) || !equalBatches(got[:len(batches)], batches) {
			t.Fatalf("batches before the recovery point changed: read %d", len(got))
		}
		after, err := vfs.ReadFile(fsys, name)
		if err == nil && !bytes.HasPrefix(before, after) {
			t.Fatalf("%s is not a prefix of what it held: %d bytes, was %d", name, len(after), len(before))
		}
		if err := checkSegments(l); err != nil {
			t.Fatal(err)
		}
		if err := l.Verify(); err != nil {
			t.Fatalf("Verify after recovery: %v", err)
		}
		appendN(t, l, 1, 1, 5, 0) // the recovered log takes appends
	})
}

// TestRecoveryTruncatesInvalidTails proves each kind of invalid tail after
// the recovery point is cut off, including valid batches at wrong offsets.
func TestRecoveryTruncatesInvalidTails(t *testing.T) {
	valid := makeBatch(10, 2, 5, 0)
	corrupt := append([]byte(nil), valid...)
	corrupt[len(corrupt)-1] ^= 1
	tests := map[string]struct {
		tail       []byte
		keptOffset int64 // log end after recovery
	}{
		"valid batch kept":    {valid, 12},
		"gap":                 {makeBatch(11, 1, 5, 0), 10},
		"overlap":             {makeBatch(9, 1, 5, 0), 10},
		"crc mismatch":        {corrupt, 10},
		"torn":                {valid[:len(valid)-1], 10},
		"zeros":               {make([]byte, 100), 10},
		"valid then torn":     {append(append([]byte(nil), valid...), makeBatch(12, 1, 5, 0)[:30]...), 12},
		"negative last delta": {withLastOffsetDelta(makeBatch(10, 1, 5, 0), -1), 10},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fsys, batches := fuzzRecoveryLog(t)
			logName := "p/" + segmentFileName(0, logSuffix)
			f, _ := fsys.OpenAppend(logName)
			f.Write(tc.tail)
			f.Close()
			l := mustOpen(t, fsys, "p", testConfig(), 0)
			defer l.Close()
			if l.NextOffset() != tc.keptOffset {
				t.Fatalf("log end %d, want %d", l.NextOffset(), tc.keptOffset)
			}
			if got := readAll(t, l, 0); !equalBatches(got[:len(batches)], batches) {
				t.Fatal("earlier batches changed")
			}
		})
	}
}

// withLastOffsetDelta rewrites a batch's last offset delta and fixes its CRC,
// making a batch that passes the CRC check but claims an impossible range.
func withLastOffsetDelta(b []byte, delta int32) []byte {
	b = append([]byte(nil), b...)
	b[23], b[24], b[25], b[26] = byte(uint32(delta)>>24), byte(uint32(delta)>>16), byte(uint32(delta)>>8), byte(uint32(delta))
	crc := crc32c(b[21:])
	b[17], b[18], b[19], b[20] = byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc)
	return b
}
