package txn

import (
	"reflect"
	"testing"
)

// TestRecordRoundTrip: metadata written in Kafka's layout reads back the same.
func TestRecordRoundTrip(t *testing.T) {
	md := Metadata{ID: "tx-é", ProducerID: 42, ProducerEpoch: 7, TimeoutMs: 60_000, State: PrepareCommit,
		Partitions: []TopicPartition{{"a", 0}, {"a", 3}, {"b", 1}}, StartMs: 1000, LastUpdateMs: 2000}
	id, got, err := decodeRecord(stateKey(md.ID), stateValue(md))
	if err != nil || id != md.ID || !reflect.DeepEqual(*got, md) {
		t.Fatalf("decoded %q %+v %v, want %+v", id, got, err, md)
	}
	if id, got, err := decodeRecord(stateKey("gone"), nil); err != nil || id != "gone" || got != nil {
		t.Fatalf("tombstone: %q %+v %v", id, got, err)
	}
	if _, _, err := decodeRecord([]byte{0, 1, 0, 0}, nil); err == nil {
		t.Fatal("a key of another version was accepted")
	}
}

// TestPartitionForMatchesJava: the partition is Kafka's (Java
// String.hashCode, abs, modulo), including the surrogate pairs of
// characters outside the BMP and the hash of MinInt32.
func TestPartitionForMatchesJava(t *testing.T) {
	cases := []struct {
		key  string
		want int32
	}{
		{"", 0},
		{"a", 97 % 50},
		{"tx-1", 3572520 % 50},    // "tx-1".hashCode() = 3572520
		{"polygenelubricants", 0}, // hashCode() = Integer.MIN_VALUE
		{"😀", int32((55357*31 + 56832) % 50)},
	}
	for _, c := range cases {
		if got := PartitionFor(c.key, 50); got != c.want {
			t.Errorf("PartitionFor(%q) = %d, want %d", c.key, got, c.want)
		}
	}
}

// FuzzDecodeRecord: any bytes decode to an error or to metadata that
// encodes back to what decodes the same.
func FuzzDecodeRecord(f *testing.F) {
	md := Metadata{ID: "t", ProducerID: 1, ProducerEpoch: 2, TimeoutMs: 3, State: Ongoing, Partitions: []TopicPartition{{"x", 1}}, StartMs: 4, LastUpdateMs: 5}
	f.Add(stateKey("t"), stateValue(md))
	f.Add(stateKey("t"), []byte(nil))
	f.Add([]byte{0, 0, 0, 1}, []byte{0, 0, 1})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		id, got, err := decodeRecord(key, value)
		if err != nil || got == nil {
			return
		}
		again, md2, err := decodeRecord(stateKey(id), stateValue(*got))
		if err != nil || again != id || !reflect.DeepEqual(md2, got) {
			t.Fatalf("re-encoded %+v decodes to %q %+v %v", got, again, md2, err)
		}
	})
}
