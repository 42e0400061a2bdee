package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairnlog/cairn/storage/vfs"
)

// startThree starts three servers forming a cluster over loopback, each
// on its own filesystem. The Raft addresses are picked free and then
// bound, so another socket may take one in between: such a start is
// retried on fresh addresses.
func startThree(t *testing.T) []*Server {
	for attempt := 1; ; attempt++ {
		servers, err := tryStartThree(t)
		if err == nil {
			t.Cleanup(func() {
				for _, s := range servers {
					if err := s.Close(); err != nil {
						t.Errorf("close: %v", err)
					}
				}
			})
			return servers
		}
		if attempt == 5 || !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatal(err)
		}
	}
}

func tryStartThree(t *testing.T) ([]*Server, error) {
	peers := map[int32]string{}
	for id := int32(1); id <= 3; id++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		peers[id] = l.Addr().String()
		l.Close()
	}
	type started struct {
		id  int32
		s   *Server
		err error
	}
	// Concurrently: each new node waits in Start for a quorum of its peers.
	results := make(chan started, len(peers))
	for id := range peers {
		go func() {
			cfg := DefaultConfig()
			cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr = "/data", "127.0.0.1:0", "127.0.0.1:0"
			cfg.NodeID, cfg.Peers, cfg.Rack = id, peers, fmt.Sprintf("rack-%d", id)
			s, err := Start(cfg, vfs.NewMem(), slog.New(slog.NewTextHandler(io.Discard, nil)))
			results <- started{id, s, err}
		}()
	}
	servers := make([]*Server, len(peers))
	var failed error
	for range peers {
		r := <-results
		if r.err != nil {
			failed = fmt.Errorf("node %d: %w", r.id, r.err)
			continue
		}
		servers[r.id-1] = r.s
	}
	if failed != nil {
		for _, s := range servers {
			if s != nil {
				_ = s.Close()
			}
		}
		return nil, failed
	}
	return servers, nil
}

// TestServersFormACluster: three servers started with the same peers form
// one cluster: a topic created through one is listed by every one, with
// its replicas placed on the three, and each node lists the three brokers
// at the Kafka and HTTP addresses they bound. A partition with no replica
// on a node is not offline there: /healthz stays ok.
func TestServersFormACluster(t *testing.T) {
	servers := startThree(t)
	if _, err := servers[2].Cluster().CreateTopicReplicated("solo", 3, 1, nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := servers[1].Cluster().CreateTopicReplicated("orders", 3, 3, nil, false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for i, s := range servers {
		for {
			top, ok := s.Cluster().Topic("orders")
			if ok && len(top.Partitions) == 3 {
				if got := slices.Sorted(slices.Values(top.Partitions[0].Replicas)); !slices.Equal(got, []int32{1, 2, 3}) {
					t.Fatalf("node %d: replicas %v", i+1, got)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d never listed the topic", i+1)
			}
			time.Sleep(5 * time.Millisecond) // polling another node's applied state
		}
		if s.Cluster().ID() != servers[0].Cluster().ID() {
			t.Fatalf("node %d in cluster %s, node 1 in %s", i+1, s.Cluster().ID(), servers[0].Cluster().ID())
		}
	}
	for i, s := range servers {
		if code, body := get(t, "http://"+s.HTTPAddr()+"/healthz"); code != 200 || body != "ok\n" {
			t.Fatalf("node %d: healthz %d %q", i+1, code, body)
		}
		if _, metrics := get(t, "http://"+s.HTTPAddr()+"/metrics"); !strings.Contains(metrics, "cairn_partitions_offline 0") {
			t.Fatalf("node %d counts partitions offline", i+1)
		}
		brokers := s.Cluster().Brokers()
		if len(brokers) != 3 {
			t.Fatalf("node %d lists brokers %+v", i+1, brokers)
		}
		for _, b := range brokers {
			want := servers[b.NodeID-1]
			if b.KafkaAddr != want.KafkaAddr() || b.HTTPAddr != want.HTTPAddr() || b.Rack != fmt.Sprintf("rack-%d", b.NodeID) {
				t.Fatalf("node %d lists %+v, node %d bound kafka %s http %s", i+1, b, b.NodeID, want.KafkaAddr(), want.HTTPAddr())
			}
		}
	}
}
