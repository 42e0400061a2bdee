package transport

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// BenchmarkSendHeartbeats measures the cost per Raft message of heartbeats
// of many groups sent to one peer over loopback, received and decoded: the
// traffic of idle groups (design §3.6, M13).
func BenchmarkSendHeartbeats(b *testing.B) {
	src, dst := startNode(b, 1, "", nil), startNode(b, 2, "", nil)
	connect(b, src, dst)
	msg := []*raftpb.Message{heartbeat(rid(1), rid(2), 1)}
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for i := 0; i < b.N; i++ {
			src.Send(2, uint64(i%1000), msg)
		}
	}()
	for got := 0; got < b.N; got += len((<-dst.inbox).msgs) {
	}
	b.StopTimer()
	if m := src.Metrics(); m.MessagesDropped > 0 {
		b.Fatalf("%d messages dropped", m.MessagesDropped)
	}
	b.ReportMetric(float64(src.Metrics().FramesSent)/float64(b.N), "frames/msg")
}
