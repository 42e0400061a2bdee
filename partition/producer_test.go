package partition

import (
	"errors"
	"math"
	"testing"

	"github.com/cairnlog/cairn/batch"
)

func hdr(pid int64, epoch int16, seq int32, records int32, base int64) batch.Header {
	return batch.Header{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, LastOffsetDelta: records - 1, BaseOffset: base}
}

// TestProducerStateSequences walks one producer through the cases a broker
// must tell apart: in-order appends, retries of any of the last five
// batches, gaps, fenced epochs and a new epoch.
func TestProducerStateSequences(t *testing.T) {
	s := newProducerState()
	steps := []struct {
		name    string
		h       batch.Header
		dupBase int64 // expected duplicate base offset, -1 for an append
		err     error
	}{
		{"an unknown producer may start at any sequence (its state may have expired)", hdr(8, 0, 3, 1, 0), -1, nil},
		{"first batch", hdr(7, 0, 0, 2, 0), -1, nil},
		{"next in sequence", hdr(7, 0, 2, 3, 2), -1, nil},
		{"retry of the first batch", hdr(7, 0, 0, 2, 99), 0, nil},
		{"retry of the second batch", hdr(7, 0, 2, 3, 99), 2, nil},
		{"gap", hdr(7, 0, 6, 1, 5), -1, ErrOutOfOrderSequence},
		{"in sequence after the refused gap", hdr(7, 0, 5, 1, 5), -1, nil},
		{"older epoch is fenced", hdr(7, -1, 6, 1, 6), -1, ErrInvalidProducerEpoch},
		{"new epoch must start at 0", hdr(7, 1, 6, 1, 6), -1, ErrOutOfOrderSequence},
		{"new epoch at 0", hdr(7, 1, 0, 1, 6), -1, nil},
		{"old epoch after the bump", hdr(7, 0, 6, 1, 7), -1, ErrInvalidProducerEpoch},
		{"non-idempotent batches are never checked", hdr(-1, -1, -1, 5, 7), -1, nil},
	}
	for _, st := range steps {
		dup, err := s.check(st.h, marker{}, false)
		if !errors.Is(err, st.err) {
			t.Fatalf("%s: err %v, want %v", st.name, err, st.err)
		}
		if err != nil {
			continue
		}
		if st.dupBase >= 0 {
			if dup == nil || dup.BaseOffset != st.dupBase {
				t.Fatalf("%s: dup %+v, want base %d", st.name, dup, st.dupBase)
			}
			continue
		}
		if dup != nil {
			t.Fatalf("%s: unexpected duplicate %+v", st.name, dup)
		}
		s.record(st.h, 0)
	}
}

// TestProducerStateRemembersFive: a retry of any of the last five batches is
// recognised; the sixth-oldest is forgotten (clients never have more in flight).
func TestProducerStateRemembersFive(t *testing.T) {
	s := newProducerState()
	for i := int32(0); i < 6; i++ {
		h := hdr(1, 0, i, 1, int64(i))
		if dup, err := s.check(h, marker{}, false); err != nil || dup != nil {
			t.Fatalf("batch %d: dup %v err %v", i, dup, err)
		}
		s.record(h, 0)
	}
	for i := int32(1); i < 6; i++ {
		if dup, _ := s.check(hdr(1, 0, i, 1, 100), marker{}, false); dup == nil || dup.BaseOffset != int64(i) {
			t.Fatalf("retry of batch %d not recognised: %+v", i, dup)
		}
	}
	if dup, err := s.check(hdr(1, 0, 0, 1, 100), marker{}, false); dup != nil || !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("forgotten batch: dup %v err %v, want out of order", dup, err)
	}
}

// TestProducerSequenceWraps: sequences wrap from MaxInt32 to 0 as in Kafka.
func TestProducerSequenceWraps(t *testing.T) {
	if got := lastSequence(hdr(1, 0, math.MaxInt32-1, 4, 0)); got != 1 {
		t.Fatalf("last sequence %d, want 1", got)
	}
	s := newProducerState()
	s.producers[1] = &producerEntry{Recent: []appendedBatch{{FirstSequence: math.MaxInt32 - 1, LastSequence: math.MaxInt32}}}
	if dup, err := s.check(hdr(1, 0, 0, 1, 0), marker{}, false); err != nil || dup != nil {
		t.Fatalf("sequence 0 after MaxInt32: dup %v err %v", dup, err)
	}
}

// TestProducerStateSnapshotRoundTrip: the persisted form restores the same state.
func TestProducerStateSnapshotRoundTrip(t *testing.T) {
	s := newProducerState()
	s.record(hdr(3, 2, 0, 4, 10), 1000)
	s.record(hdr(9, 0, 0, 1, 14), 2000)
	data, err := s.marshal(15)
	if err != nil {
		t.Fatal(err)
	}
	got, next, err := unmarshalProducerState(data, 5000)
	if err != nil || next != 15 {
		t.Fatalf("next %d err %v", next, err)
	}
	if ids := got.ids(); len(ids) != 2 || ids[0] != 3 || ids[1] != 9 {
		t.Fatalf("ids %v", ids)
	}
	if dup, _ := got.check(hdr(3, 2, 0, 4, 99), marker{}, false); dup == nil || dup.BaseOffset != 10 {
		t.Fatalf("restored state lost the batch: %+v", dup)
	}
	if got.producers[9].LastAppendMs != 2000 {
		t.Fatalf("restored last append %d, want 2000", got.producers[9].LastAppendMs)
	}
	if _, _, err := unmarshalProducerState([]byte(`{"version":99}`), 0); err == nil {
		t.Fatal("accepted an unknown snapshot version")
	}
	old, _, err := unmarshalProducerState([]byte(`{"version":1,"next_offset":3,"producers":{"4":{"epoch":0,"recent":[]}}}`), 5000)
	if err != nil || old.producers[4].LastAppendMs != 5000 {
		t.Fatalf("snapshot without last_append_ms: %+v err %v; want producer 4 last appended when read", old.producers[4], err)
	}
}

// TestProducerStateExpiry: a producer is forgotten once it appended nothing
// for the expiration period, as with Kafka's producer.id.expiration.ms, and
// kept while it is younger.
func TestProducerStateExpiry(t *testing.T) {
	const expirationMs = 1000
	cases := []struct {
		name         string
		lastAppendMs int64
		nowMs        int64
		kept         bool
	}{
		{"just appended", 5000, 5000, true},
		{"idle one millisecond less than the period", 5000, 5999, true},
		{"idle exactly the period", 5000, 6000, false},
		{"idle far longer", 5000, 1 << 40, false},
		{"clock went back", 5000, 4000, true},
	}
	for _, c := range cases {
		s := newProducerState()
		s.record(hdr(1, 0, 0, 1, 0), c.lastAppendMs)
		s.record(hdr(2, 0, 0, 1, 1), c.nowMs) // active at nowMs: always kept
		removed := s.expire(c.nowMs, expirationMs)
		_, kept := s.producers[1]
		if kept != c.kept || removed != map[bool]int{true: 0, false: 1}[c.kept] {
			t.Errorf("%s: kept %v (removed %d), want kept %v", c.name, kept, removed, c.kept)
		}
		if _, ok := s.producers[2]; !ok {
			t.Errorf("%s: the active producer was forgotten", c.name)
		}
	}
}

// TestProducerStateCloneIsIndependent: a snapshot copy does not change when
// appends go on after it was taken.
func TestProducerStateCloneIsIndependent(t *testing.T) {
	s := newProducerState()
	s.record(hdr(1, 0, 0, 1, 0), 10)
	c := s.clone()
	s.record(hdr(1, 0, 1, 1, 1), 20)
	s.record(hdr(2, 0, 0, 1, 2), 20)
	if len(c.producers) != 1 || len(c.producers[1].Recent) != 1 || c.producers[1].LastAppendMs != 10 {
		t.Fatalf("copy changed with the state: %+v", c.producers[1])
	}
}
