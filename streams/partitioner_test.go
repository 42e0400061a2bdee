package streams

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestPartitionMatchesKafka: the same key lands where franz-go's Kafka-compatible
// default partitioner (murmur2) puts it, for several partition counts.
func TestPartitionMatchesKafka(t *testing.T) {
	for _, n := range []int{1, 3, 16, 1000} {
		p := kgo.StickyKeyPartitioner(nil).ForTopic("t")
		for i := range 500 {
			key := []byte(fmt.Sprintf("order-%d", i*7919))
			want := p.Partition(&kgo.Record{Key: key}, n)
			if got := Partition(key, int32(n)); int(got) != want {
				t.Fatalf("key %s over %d partitions: %d, kafka %d", key, n, got, want)
			}
		}
	}
}
