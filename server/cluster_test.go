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

	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/internal/faultproxy"
	"github.com/cairnlog/cairn/storage/vfs"
)

// testCluster is three servers forming a cluster over loopback, each on
// its own filesystem, so a node can be closed and started again from its
// data directory.
type testCluster struct {
	t       testing.TB
	peers   map[int32]string
	fs      map[int32]vfs.FS
	kafka   map[int32]string // the Kafka address each node bound last
	servers map[int32]*Server
	// logger, when set, is node id's logger (a test reading what the
	// nodes log); the nodes log nowhere otherwise.
	logger func(id int32) *slog.Logger
	// proxied puts a faultproxy at each node's address in peers, in
	// front of its Raft listener at raft[id].
	proxied bool
	raft    map[int32]string
	proxies map[int32]*faultproxy.Proxy
	// clocks, when set for a node, is its clock (real by default).
	clocks map[int32]env.Clock
	// joined maps the nodes started with --join (through node 1) to
	// their Raft address.
	joined map[int32]string
	// sasl, when set, requires SASL with these mechanisms on every node.
	sasl []string
	// config, when set, adjusts node id's configuration before it starts.
	config func(id int32, cfg *Config)
}

// startThree starts three servers forming a cluster and returns them by
// node id - 1.
func startThree(t *testing.T) []*Server {
	tc := startCluster(t)
	return []*Server{tc.servers[1], tc.servers[2], tc.servers[3]}
}

// startCluster starts three servers forming a cluster over loopback. The
// Raft addresses are picked free and then bound, so another socket may
// take one in between: such a start is retried on fresh addresses. Every
// running server is closed when the test ends.
func startCluster(t *testing.T) *testCluster {
	return startClusterLogging(t, nil)
}

// startClusterLogging is startCluster with node id logging to logger(id).
func startClusterLogging(t *testing.T, logger func(id int32) *slog.Logger) *testCluster {
	return startClusterWith(t, &testCluster{t: t, logger: logger})
}

// startClusterWith starts the cluster tc describes.
func startClusterWith(t testing.TB, tc *testCluster) *testCluster {
	for attempt := 1; ; attempt++ {
		err := tc.tryStart()
		if err == nil {
			break
		}
		if attempt == 5 || !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for id := range tc.servers {
			tc.stop(id)
		}
		tc.closeProxies()
	})
	return tc
}

// startProxies puts a proxy in front of each node's Raft listener and
// names the proxies in peers.
func (tc *testCluster) startProxies() {
	tc.raft, tc.proxies = map[int32]string{}, map[int32]*faultproxy.Proxy{}
	for id, addr := range tc.peers {
		p, err := faultproxy.New(faultproxy.Config{Target: addr})
		if err != nil {
			tc.t.Fatal(err)
		}
		tc.raft[id], tc.peers[id], tc.proxies[id] = addr, p.Addr(), p
	}
}

func (tc *testCluster) closeProxies() {
	for _, p := range tc.proxies {
		if err := p.Close(); err != nil {
			tc.t.Errorf("close a proxy: %v", err)
		}
	}
	tc.proxies = nil
}

func (tc *testCluster) tryStart() error {
	tc.peers, tc.fs, tc.kafka, tc.servers = map[int32]string{}, map[int32]vfs.FS{}, map[int32]string{}, map[int32]*Server{}
	for id := int32(1); id <= 3; id++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tc.t.Fatal(err)
		}
		tc.peers[id], tc.fs[id], tc.kafka[id] = l.Addr().String(), vfs.NewMem(), "127.0.0.1:0"
		l.Close()
	}
	tc.closeProxies()
	if tc.proxied {
		tc.startProxies()
	}
	type started struct {
		id  int32
		s   *Server
		err error
	}
	// Concurrently: each new node waits in Start for a quorum of its peers.
	results := make(chan started, len(tc.peers))
	for id := range tc.peers {
		go func() {
			s, err := tc.start(id)
			results <- started{id, s, err}
		}()
	}
	var failed error
	for range tc.peers {
		r := <-results
		if r.err != nil {
			failed = fmt.Errorf("node %d: %w", r.id, r.err)
			continue
		}
		tc.servers[r.id] = r.s
	}
	if failed != nil {
		for id := range tc.servers {
			tc.stop(id)
		}
	}
	return failed
}

// start starts node id on its filesystem, its Kafka listener on the
// address it bound last (any free one the first time).
func (tc *testCluster) start(id int32) (*Server, error) {
	if _, ok := tc.joined[id]; ok {
		cfg := tc.joinedConfig(id)
		if tc.config != nil {
			tc.config(id, &cfg)
		}
		return Start(cfg, tc.fs[id], slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	cfg := DefaultConfig()
	cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr = "/data", tc.kafka[id], "127.0.0.1:0"
	cfg.NodeID, cfg.Peers, cfg.Rack, cfg.RaftAddr = id, tc.peers, fmt.Sprintf("rack-%d", id), tc.raft[id]
	cfg.Env.Clock = tc.clocks[id]
	cfg.SASLMechanisms = tc.sasl
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if tc.logger != nil {
		logger = tc.logger(id)
	}
	if tc.config != nil {
		tc.config(id, &cfg)
	}
	return Start(cfg, tc.fs[id], logger)
}

// stop closes node id: every synced record stays in its data directory.
func (tc *testCluster) stop(id int32) {
	s := tc.servers[id]
	delete(tc.servers, id)
	tc.kafka[id] = s.KafkaAddr()
	if err := s.Close(); err != nil {
		tc.t.Errorf("close node %d: %v", id, err)
	}
}

// restart starts node id again from its data directory, on its old Kafka
// address; a client's socket may hold that port a moment, so a refused
// bind is retried, and then the node takes any free port (it registers
// the new address).
func (tc *testCluster) restart(id int32) {
	tc.t.Helper()
	for attempt := 1; ; attempt++ {
		s, err := tc.start(id)
		if err == nil {
			tc.servers[id] = s
			return
		}
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == 20 {
			tc.t.Fatalf("restart node %d: %v", id, err)
		}
		if attempt == 10 {
			tc.kafka[id] = "127.0.0.1:0"
		}
		time.Sleep(50 * time.Millisecond) // the port's holder is outside the test's reach
	}
}

// kafkaAddrs lists the running nodes' Kafka addresses.
func (tc *testCluster) kafkaAddrs() []string {
	var addrs []string
	for _, s := range tc.servers {
		addrs = append(addrs, s.KafkaAddr())
	}
	return addrs
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
