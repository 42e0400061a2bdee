package server

import (
	"context"
	"testing"

	"github.com/cairnlog/cairn/client"
)

// BenchmarkClusterLinearize measures what a linearizable read costs on a
// partition leader of three in-process servers over loopback TCP: the
// ReadIndex alone (one heartbeat round to the followers), one caller at a
// time and many at once (their reads share rounds), and a whole
// ReadStream of one event through the HTTP API, which includes it.
func BenchmarkClusterLinearize(b *testing.B) {
	tc := startClusterWith(b, &testCluster{t: b})
	const topic, stream = "bench-linearize", "s"
	if _, err := tc.servers[1].Cluster().CreateTopicReplicated(topic, 1, 3, map[string]string{"cleanup.policy": "stream"}, false); err != nil {
		b.Fatal(err)
	}
	lead := tc.leaderOf(topic, 0)
	p, err := tc.servers[lead].Cluster().Partition(topic, 0)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	c, err := client.New("http://" + tc.servers[lead].HTTPAddr())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Append(ctx, topic, stream, client.NoStream, client.EventData{Type: "Placed", Data: []byte(`{}`)}); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if _, err := p.Linearize(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(32) // 32 callers per CPU
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := p.Linearize(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("readstream", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.ReadStream(ctx, topic, stream); err != nil {
				b.Fatal(err)
			}
		}
	})
}
