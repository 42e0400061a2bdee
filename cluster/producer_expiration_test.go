package cluster

import (
	"testing"

	"github.com/cairnlog/cairn/storage/vfs"
)

// TestProducerIDExpirationReachesPartitions: the node's
// producer.id.expiration.ms applies to every partition's config, and a
// non-positive value is refused.
func TestProducerIDExpirationReachesPartitions(t *testing.T) {
	cfg := DefaultConfig("/data")
	cfg.ProducerIDExpirationMs = 1234
	c, err := Open(testEnv(vfs.NewMem()), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pcfg, err := c.partitionConfig(map[string]string{"cleanup.policy": "compact"})
	if err != nil {
		t.Fatal(err)
	}
	if pcfg.ProducerIDExpirationMs != 1234 {
		t.Fatalf("partition producer id expiration %d ms, want 1234", pcfg.ProducerIDExpirationMs)
	}
	cfg.ProducerIDExpirationMs = 0
	if cfg.Validate() == nil {
		t.Fatal("accepted a producer id expiration of 0 ms")
	}
}
