package storage

import (
	"errors"
	"math"
	"testing"

	"github.com/cairnlog/cairn/batch"
)

// TestStateRoundTrip proves the state file decodes to what was encoded.
func TestStateRoundTrip(t *testing.T) {
	st := logState{
		clean:       true,
		startOffset: 150,
		recovery: recoveryPoint{nextOffset: 900, segmentBase: 500, positionBytes: 12345,
			offsetIndexEntries: 7, timeIndexEntries: 3, maxTimestampMs: 1700000000000, maxTimestampOffset: 880},
		segments: []segmentRecord{{100, 1}, {300, 2}, {500, 3}},
	}
	got, err := decodeState(st.encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.clean != st.clean || got.startOffset != st.startOffset || got.recovery != st.recovery || len(got.segments) != 3 || got.segments[2] != st.segments[2] {
		t.Fatalf("decoded %+v, want %+v", got, st)
	}
}

// TestStateRejectsDamage proves every damaged or inconsistent state file is
// refused rather than trusted.
func TestStateRejectsDamage(t *testing.T) {
	valid := logState{
		startOffset: 0,
		recovery:    recoveryPoint{nextOffset: 10, segmentBase: 0, positionBytes: 100, maxTimestampMs: noTimestamp},
		segments:    []segmentRecord{{0, 0}},
	}
	flip := func(at int) []byte { b := valid.encode(); b[at] ^= 1; return b }
	inconsistent := func(change func(*logState)) []byte {
		s := valid
		s.segments = append([]segmentRecord(nil), valid.segments...)
		change(&s)
		return s.encode()
	}
	tests := map[string][]byte{
		"empty":                   nil,
		"truncated":               valid.encode()[:40],
		"magic":                   flip(0),
		"version":                 flip(5),
		"crc":                     flip(20),
		"extra byte":              append(valid.encode(), 0),
		"start above recovery":    inconsistent(func(s *logState) { s.startOffset = 11 }),
		"recovery not last":       inconsistent(func(s *logState) { s.recovery.segmentBase = 5 }),
		"unsorted segments":       inconsistent(func(s *logState) { s.segments = []segmentRecord{{5, 0}, {0, 0}} }),
		"recovery offset too far": inconsistent(func(s *logState) { s.recovery.nextOffset = math.MaxUint32 + 2 }),
	}
	for name, data := range tests {
		if _, err := decodeState(data); !errors.Is(err, errStateInvalid) {
			t.Errorf("%s: decodeState = %v, want errStateInvalid", name, err)
		}
	}
}

// TestSegmentFileNames proves names sort by offset and parse back.
func TestSegmentFileNames(t *testing.T) {
	name := segmentFileName(4096, logSuffix)
	if name != "00000000000000004096.log" {
		t.Fatalf("name %q", name)
	}
	for _, tc := range []struct {
		name   string
		base   int64
		suffix string
		ok     bool
	}{
		{"00000000000000004096.log", 4096, logSuffix, true},
		{"09223372036854775807.timeindex", math.MaxInt64, timeIndexSuffix, true},
		{"00000000000000004096.index", 4096, offsetIndexSuffix, true},
		{"00000000000000004096.log.cleaned", 0, "", false},
		{"0000000000000000409x.log", 0, "", false},
		{"99999999999999999999.log", 0, "", false},
		{"log-state", 0, "", false},
	} {
		base, suffix, ok := parseSegmentFileName(tc.name)
		if base != tc.base || suffix != tc.suffix || ok != tc.ok {
			t.Errorf("parse %q = %d %q %v", tc.name, base, suffix, ok)
		}
	}
}

// TestIndexerSpacing proves offset entries come at most one interval apart
// and time entries only for batches raising the maximum.
func TestIndexerSpacing(t *testing.T) {
	x := newIndexer(1000, 100)
	type step struct {
		base, maxTs, position int64
		wantOffset, wantTime  bool
	}
	steps := []step{
		{1000, 50, 0, false, true},   // first batch: position 0 is the implicit offset entry; first time entry
		{1001, 40, 60, false, false}, // timestamp went down
		{1002, 60, 80, false, false}, // raises the maximum, but only 80 bytes after the last time entry
		{1003, 70, 150, true, true},  // 150 bytes after both previous entries
		{1004, 10, 200, false, false},
	}
	for _, s := range steps {
		offset, time := x.add(batch.Header{BaseOffset: s.base, MaxTimestamp: s.maxTs}, s.position)
		if (offset != nil) != s.wantOffset || (time != nil) != s.wantTime {
			t.Fatalf("batch %d: offset entry %v time entry %v", s.base, offset, time)
		}
	}
	if x.maxTimestampMs != 70 || x.maxTimestampOffset != 1003 {
		t.Fatalf("max %d at %d", x.maxTimestampMs, x.maxTimestampOffset)
	}
	if _, ok := x.seal(); ok {
		t.Fatal("seal added an entry though the last entry is the maximum")
	}
	x.add(batch.Header{BaseOffset: 1005, MaxTimestamp: 90}, 220) // raises max, within interval: no entry
	final, ok := x.seal()
	if !ok || final != (timeEntry{timestampMs: 90, relativeOffset: 5}) {
		t.Fatalf("seal = %+v %v", final, ok)
	}
}

// TestIndexLookups proves floor lookups on both indexes.
func TestIndexLookups(t *testing.T) {
	offsets := []offsetEntry{{10, 100}, {20, 200}, {30, 300}}
	for rel, want := range map[uint32]int64{0: 0, 9: 0, 10: 100, 25: 200, 99: 300} {
		if got := floorPosition(offsets, rel); got != want {
			t.Errorf("floorPosition(%d) = %d, want %d", rel, got, want)
		}
	}
	times := []timeEntry{{100, 0}, {200, 5}, {300, 9}}
	for ts, want := range map[int64]int{50: -1, 100: -1, 101: 0, 300: 1, 301: 2} {
		e, ok := timeFloor(times, ts)
		if (want < 0) != !ok || (ok && e != times[want]) {
			t.Errorf("timeFloor(%d) = %+v %v, want entry %d", ts, e, ok, want)
		}
	}
	bad := appendOffsetEntry(appendOffsetEntry(nil, offsetEntry{5, 50}), offsetEntry{5, 60})
	if _, err := decodeOffsetIndex(bad); !errors.Is(err, errIndexInvalid) {
		t.Errorf("non-increasing offset index accepted: %v", err)
	}
	if _, err := decodeTimeIndex(make([]byte, 13)); !errors.Is(err, errIndexInvalid) {
		t.Errorf("ragged time index accepted: %v", err)
	}
}

// TestShouldRoll proves each roll condition.
func TestShouldRoll(t *testing.T) {
	cfg := Config{SegmentBytes: 1000, SegmentMs: 500, IndexIntervalBytes: 10}
	tests := []struct {
		name                                                  string
		base, size, createdMs, appendBytes, lastOffset, nowMs int64
		want                                                  bool
	}{
		{"fits", 0, 500, 0, 500, 10, 500, false},
		{"too big", 0, 500, 0, 501, 10, 0, true},
		{"empty takes anything", 0, 0, 0, 5000, 10, 10000, false},
		{"too old", 0, 10, 0, 10, 10, 501, true},
		{"offset span", 0, 10, 0, 10, math.MaxUint32 + 1, 0, true},
	}
	for _, tc := range tests {
		if got := shouldRoll(cfg, tc.base, tc.size, tc.createdMs, tc.appendBytes, tc.lastOffset, tc.nowMs); got != tc.want {
			t.Errorf("%s: shouldRoll = %v", tc.name, got)
		}
	}
}

// TestConfigValidate proves defaults are valid and out-of-range fields are not.
func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Config{
		{SegmentBytes: 0, SegmentMs: 1, IndexIntervalBytes: 1},
		{SegmentBytes: math.MaxUint32 + 1, SegmentMs: 1, IndexIntervalBytes: 1},
		{SegmentBytes: 1, SegmentMs: 0, IndexIntervalBytes: 1},
		{SegmentBytes: 1, SegmentMs: 1, IndexIntervalBytes: -1},
	} {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
}
