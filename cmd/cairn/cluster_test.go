package main

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

	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/storage/vfs"
)

// startServers starts n cairn servers forming a cluster over loopback and
// returns them and their Kafka addresses, comma-separated. The Raft
// addresses are picked free and then bound, so another socket may take
// one in between: such a start is retried on fresh addresses.
func startServers(t *testing.T, n int) ([]*server.Server, string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		servers, err := tryStartServers(t, n)
		if err == nil {
			t.Cleanup(func() {
				for _, s := range servers {
					if err := s.Close(); err != nil {
						t.Errorf("close: %v", err)
					}
				}
			})
			var addrs []string
			for _, s := range servers {
				addrs = append(addrs, s.KafkaAddr())
			}
			return servers, strings.Join(addrs, ",")
		}
		if attempt == 5 || !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatal(err)
		}
	}
}

func tryStartServers(t *testing.T, n int) ([]*server.Server, error) {
	peers := map[int32]string{}
	for id := int32(1); id <= int32(n); id++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		peers[id] = l.Addr().String()
		l.Close()
	}
	type started struct {
		id  int32
		s   *server.Server
		err error
	}
	results := make(chan started, n)
	for id := range peers {
		go func() {
			cfg := server.DefaultConfig()
			cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr = "/data", "127.0.0.1:0", "127.0.0.1:0"
			cfg.NodeID, cfg.Peers = id, peers
			s, err := server.Start(cfg, vfs.NewMem(), slog.New(slog.NewTextHandler(io.Discard, nil)))
			results <- started{id, s, err}
		}()
	}
	servers := make([]*server.Server, n)
	var failed error
	for range n {
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

// TestClusterCommands: against three servers, status lists the nodes,
// their states and the metadata leader; move moves a partition and waits
// for it; rebalance-leaders asks every node; remove-node drains a node
// until it is gone, and status no longer lists it.
func TestClusterCommands(t *testing.T) {
	servers, brokers := startServers(t, 3)
	if _, err := servers[0].Cluster().CreateTopicReplicated("orders", 2, 2, nil, false); err != nil {
		t.Fatal(err)
	}
	// Every node applies the topic in its own time, and status may ask any.
	for deadline, i := time.Now().Add(30*time.Second), 0; i < len(servers); {
		if _, ok := servers[i].Cluster().Topic("orders"); ok {
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d has not applied the topic after 30 s", i+1)
		}
		time.Sleep(10 * time.Millisecond) // polling the node's applied metadata
	}
	status := mustCairn(t, "cluster", "status", "--brokers", brokers).stdout
	for _, want := range []string{"NODE  STATE   KAFKA ADDRESS", "metadata leader", "partitions 2,", "moving 0"} {
		if !strings.Contains(status, want) {
			t.Fatalf("status lacks %q:\n%s", want, status)
		}
	}
	if got := strings.Count(status, "ACTIVE"); got != 3 {
		t.Fatalf("status shows %d active nodes:\n%s", got, status)
	}

	top, _ := servers[0].Cluster().Topic("orders")
	old := top.Partitions[0].Replicas
	var spare int32
	for id := int32(1); id <= 3; id++ {
		if !slices.Contains(old, id) {
			spare = id
		}
	}
	target := fmt.Sprintf("%d,%d", old[0], spare)
	moved := mustCairn(t, "cluster", "move", "orders", "0", "--replicas", target, "--brokers", brokers).stdout
	if !strings.Contains(moved, "moved orders-0") {
		t.Fatalf("move printed:\n%s", moved)
	}
	if r := cairn(t, "cluster", "move", "orders", "0", "--brokers", brokers); r.err == nil || !strings.Contains(r.err.Error(), "--replicas or --cancel") {
		t.Fatalf("move without a target: %v", r.err)
	}

	if out := mustCairn(t, "cluster", "rebalance-leaders", "--brokers", brokers).stdout; !strings.Contains(out, "transfers") {
		t.Fatalf("rebalance-leaders printed:\n%s", out)
	}

	removed := mustCairn(t, "cluster", "remove-node", "3", "--brokers", brokers).stdout
	if !strings.Contains(removed, "node 3 removed") {
		t.Fatalf("remove-node printed:\n%s", removed)
	}
	t.Logf("move:\n%s\nremove-node:\n%s", moved, removed)
	status = mustCairn(t, "cluster", "status", "--brokers", servers[0].KafkaAddr()).stdout
	if got := strings.Count(status, "ACTIVE"); got != 2 {
		t.Fatalf("status after the removal shows %d active nodes:\n%s", got, status)
	}
}
