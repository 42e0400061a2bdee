package raftlog

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cairnlog/cairn/batch"
)

// fakeHeaders is a headerSource over batch headers in memory, returning at
// most chunk headers per call so that read-ahead boundaries are exercised.
type fakeHeaders struct {
	batches []batch.Header
	chunk   int
	calls   int
}

// stored is a batch of n offsets at base, written in term epoch.
func stored(base int64, n int32, epoch int32) batch.Header {
	return batch.Header{BaseOffset: base, LastOffsetDelta: n - 1, PartitionLeaderEpoch: epoch}
}

func (f *fakeHeaders) headers(from int64) ([]batch.Header, error) {
	f.calls++
	for k, h := range f.batches {
		if from <= h.LastOffset() {
			return f.batches[k:min(len(f.batches), k+f.chunk)], nil
		}
	}
	return nil, nil
}

// locateHistory is history() with the segments under it and a command
// entry 20 between data entries 19 and 21:
//
//	index  11     12   13   14   15    16     17   18   19   20    21
//	       empty  500  520  540  conf  empty  560  600  610  cmd   615
//	term   3      3    3    3    3     5      5    5    5    5     5
func locateHistory() ([]Record, []batch.Header) {
	records := append(history(), &Entry{Index: 20, Term: 5, Kind: KindCommand, NextOffset: 615, Data: []byte{0x81}})
	batches := []batch.Header{
		stored(500, 20, 3), stored(520, 20, 3), stored(540, 20, 3),
		stored(560, 40, 5), stored(600, 10, 5), stored(610, 5, 5), stored(615, 1, 5),
	}
	return records, batches
}

// want describes one located entry compactly: "d@500" data at 500,
// "n@560" a non-data entry preceding 560.
func describe(es []located) []string {
	out := make([]string, len(es))
	for k, e := range es {
		kind := "d"
		if e.NonData != nil {
			kind = "n"
			if e.NonData.Index != e.Index {
				kind = "n?"
			}
		}
		out[k] = fmt.Sprintf("%d%s@%d", e.Index, kind, e.Offset)
	}
	return out
}

func TestLocateEveryRange(t *testing.T) {
	records, batches := locateHistory()
	b := testBook(t, records...)
	all := []string{"11n@500", "12d@500", "13d@520", "14d@540", "15n@560", "16n@560",
		"17d@560", "18d@600", "19d@610", "20n@615", "21d@615"}
	for _, chunk := range []int{1, 2, 100} {
		for lo := uint64(11); lo <= 23; lo++ {
			for hi := lo; hi <= 24; hi++ {
				src := &fakeHeaders{batches: batches, chunk: chunk}
				got, ok, err := locate(b, src, lo, hi)
				if err != nil || !ok {
					t.Fatalf("chunk %d locate(%d, %d): %v, %v", chunk, lo, hi, ok, err)
				}
				want := all[min(lo-11, 11):min(hi-11, 11)]
				if fmt.Sprint(describe(got)) != fmt.Sprint(want) {
					t.Errorf("chunk %d locate(%d, %d) = %v, want %v", chunk, lo, hi, describe(got), want)
				}
			}
		}
	}
}

func TestLocateStartsAtNearestPosition(t *testing.T) {
	records, batches := locateHistory()
	b := testBook(t, records...)
	src := &fakeHeaders{batches: batches, chunk: 1}
	// Entry 19 is counted from the anchor 18 → 600: two batch headers, not
	// a walk from the snapshot.
	if _, _, err := locate(b, src, 19, 20); err != nil {
		t.Fatal(err)
	}
	if src.calls != 2 {
		t.Errorf("locate(19, 20) read headers %d times, want 2 (from the anchor at 18)", src.calls)
	}
}

func TestLocateCompacted(t *testing.T) {
	records, batches := locateHistory()
	b := testBook(t, records...)
	for _, lo := range []uint64{0, 9, 10} {
		if _, ok, err := locate(b, &fakeHeaders{batches: batches, chunk: 2}, lo, 12); ok || err != nil {
			t.Errorf("locate(%d, 12) = %v, %v; want compacted", lo, ok, err)
		}
	}
}

func TestOffsetOf(t *testing.T) {
	records, batches := locateHistory()
	b := testBook(t, records...)
	want := map[uint64]int64{11: 500, 12: 500, 13: 520, 14: 540, 15: 560, 16: 560, 17: 560,
		18: 600, 19: 610, 20: 615, 21: 615, 22: 616}
	for i := uint64(11); i <= 22; i++ {
		got, ok, err := offsetOf(b, &fakeHeaders{batches: batches, chunk: 2}, i)
		if err != nil || !ok || got != want[i] {
			t.Errorf("offsetOf(%d) = %d, %v, %v; want %d", i, got, ok, err, want[i])
		}
	}
	if _, ok, err := offsetOf(b, &fakeHeaders{batches: batches, chunk: 2}, 10); ok || err != nil {
		t.Errorf("offsetOf(10) = %v, %v; want compacted", ok, err)
	}
	if _, _, err := offsetOf(b, &fakeHeaders{batches: batches, chunk: 2}, 23); !errors.Is(err, errBeyondEnd) {
		t.Errorf("offsetOf(23): %v, want errBeyondEnd", err)
	}
}

func TestLocateAfterTruncation(t *testing.T) {
	records, batches := locateHistory()
	// A new leader of term 6 overrode 17 and above: the segments were cut
	// to 560 and its empty entry and one batch follow.
	records = append(records,
		&Truncate{Index: 17, NextOffset: 560},
		&Entry{Index: 17, Term: 6, Kind: KindEmpty, NextOffset: 560},
	)
	batches = append(batches[:3], stored(560, 3, 6), stored(563, 2, 6))
	b := testBook(t, records...)
	got, _, err := locate(b, &fakeHeaders{batches: batches, chunk: 2}, 14, 30)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"14d@540", "15n@560", "16n@560", "17n@560", "18d@560", "19d@563"}
	if fmt.Sprint(describe(got)) != fmt.Sprint(want) {
		t.Errorf("after truncation locate(14, 30) = %v, want %v", describe(got), want)
	}
}

func TestLocateMismatch(t *testing.T) {
	cases := []struct {
		name    string
		edit    func([]batch.Header) []batch.Header
		records []Record
		lo, hi  uint64
	}{
		{"wrong epoch", func(bs []batch.Header) []batch.Header {
			bs[1].PartitionLeaderEpoch = 4
			return bs
		}, nil, 11, 14},
		{"batch missing before a non-data entry", func(bs []batch.Header) []batch.Header {
			return bs[:5] // 615.. gone, but entry 20 precedes 615 and 19 must end there
		}, nil, 19, 22},
		{"batch ends where counting does not", func(bs []batch.Header) []batch.Header {
			bs[1].LastOffsetDelta = 9 // 520..529, then 540 is not the next batch
			return bs
		}, nil, 12, 15},
		{"log ends before a non-data entry", func(bs []batch.Header) []batch.Header {
			return bs[:1] // entry 15 precedes 560, the log ends at 520
		}, nil, 11, 16},
		{"anchor inside a batch", func(bs []batch.Header) []batch.Header { return bs },
			[]Record{&Anchor{Index: 19, Offset: 612}}, 19, 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			records, batches := locateHistory()
			if c.records != nil {
				// Replace command entry 20 so the anchor is the last record.
				records = append(records[:len(records)-1], c.records...)
			}
			b := testBook(t, records...)
			src := &fakeHeaders{batches: c.edit(append([]batch.Header(nil), batches...)), chunk: 2}
			if _, _, err := locate(b, src, c.lo, c.hi); !errors.Is(err, errLogMismatch) {
				t.Errorf("locate(%d, %d): %v, want errLogMismatch", c.lo, c.hi, err)
			}
		})
	}
}

func TestLocateSourceError(t *testing.T) {
	records, _ := locateHistory()
	b := testBook(t, records...)
	broken := errors.New("disk gone")
	_, _, err := locate(b, failingHeaders{broken}, 12, 13)
	if !errors.Is(err, broken) {
		t.Errorf("locate over a failing source: %v, want it wrapped", err)
	}
}

type failingHeaders struct{ err error }

func (f failingHeaders) headers(int64) ([]batch.Header, error) { return nil, f.err }
