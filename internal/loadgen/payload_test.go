package loadgen

import (
	"bytes"
	"testing"
	"time"
)

func TestPayloadKeysCycleThroughTheDistinctCount(t *testing.T) {
	p := newPayload(16, 3)
	seen := map[string]bool{}
	for n := range int64(30) {
		seen[string(p.key(n))] = true
	}
	if len(seen) != 3 || !seen["key-0"] || !seen["key-2"] {
		t.Errorf("keys %v, want key-0..key-2", seen)
	}
	if key := newPayload(16, 0).key(7); key != nil {
		t.Errorf("keys 0 gave %q, want a null key", key)
	}
}

func TestPayloadValuesHaveTheSizeAndDiffer(t *testing.T) {
	p := newPayload(100, 0)
	first, second := p.value(0), p.value(1)
	if len(first) != 100 || len(second) != 100 {
		t.Fatalf("value sizes %d, %d, want 100", len(first), len(second))
	}
	if bytes.Equal(first, second) {
		t.Error("consecutive values are equal, so batches would compress unrealistically")
	}
	if cap(first) != 100 {
		t.Errorf("value capacity %d lets an append write into the shared pool", cap(first))
	}
	if empty := newPayload(0, 0).value(5); len(empty) != 0 {
		t.Errorf("zero-byte value has %d bytes", len(empty))
	}
}

func TestTimestampedValueRoundTrips(t *testing.T) {
	p := newPayload(32, 0)
	value := p.timestampedValue(9, 1234567*time.Microsecond)
	if len(value) != 32 {
		t.Fatalf("value has %d bytes, want 32", len(value))
	}
	got, ok := sentAt(value)
	if !ok || got != 1234567*time.Microsecond {
		t.Errorf("sentAt = %v, %v", got, ok)
	}
	if !bytes.Equal(value[timestampBytes:], p.value(9)[timestampBytes:]) {
		t.Error("the timestamp must replace only the first 8 bytes")
	}
	if _, ok := sentAt([]byte("short")); ok {
		t.Error("a 5-byte value read as a timestamp")
	}
}

func TestProgressLineShowsTheRateSinceTheLastLine(t *testing.T) {
	if got := progressLine(WorkloadConsume, 3000, 1000, 2*time.Second); got != "consume: 3000 records, 1000 records/s" {
		t.Errorf("got %q", got)
	}
	if got := progressLine(WorkloadProduce, 5, 5, 0); got != "produce: 5 records, 0 records/s" {
		t.Errorf("no time passing gave %q", got)
	}
}
