package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/auth"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/kafka"
	"github.com/cairnlog/cairn/storage/vfs"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestServeRestart: the wired server answers Kafka, /healthz and /metrics,
// and a clean Close then Start keeps the data.
func TestServeRestart(t *testing.T) {
	fsys := vfs.NewMem()
	cfg := DefaultConfig()
	cfg.DataDir = "/data"
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Start(cfg, fsys, logger)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaAddr()), kgo.DefaultProduceTopic("t"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("kept")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	if code, body := get(t, "http://"+s.HTTPAddr()+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz %d %q", code, body)
	}
	_, metrics := get(t, "http://"+s.HTTPAddr()+"/metrics")
	for _, want := range []string{"cairn_partition_high_watermark{partition=\"0\",topic=\"t\"} 1", "cairn_partition_last_stable_offset{partition=\"0\",topic=\"t\"} 1", "cairn_kafka_requests_total", "cairn_partition_sync_seconds"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Start(cfg, fsys, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := s.Cluster().Partition("t", 0)
	if err != nil || p.HighWatermark() != 1 {
		t.Fatalf("after restart: %v, hwm %d", err, p.HighWatermark())
	}
}

// TestStartRunsInTheConfiguredEnv: with no filesystem argument the node
// keeps its data on Config.Env's filesystem, and its ids come from
// Config.Env's randomness: one seed, one cluster id.
func TestStartRunsInTheConfiguredEnv(t *testing.T) {
	start := func(seed uint64) (string, vfs.FS) {
		cfg := DefaultConfig()
		cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr = "/data", "127.0.0.1:0", ""
		cfg.Env = env.Env{FS: vfs.NewMem(), Rand: env.NewSeededRand(seed),
			Clock: env.NewManualClock(time.Unix(1_700_000_000, 0))}
		s, err := Start(cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		return s.Cluster().ID(), cfg.Env.FS
	}
	first, fsys := start(3)
	if _, err := fsys.Stat("/data/node.json"); err != nil {
		t.Fatalf("node.json not on the env's filesystem: %v", err)
	}
	if again, _ := start(3); again != first {
		t.Fatalf("seed 3 gave cluster ids %s and %s", first, again)
	}
}

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	joining := DefaultConfig()
	joining.NodeID, joining.Join, joining.RaftAddr = 4, "127.0.0.1:1", "127.0.0.1:2"
	if err := joining.Validate(); err != nil {
		t.Fatalf("a joining node's config: %v", err)
	}
	saslShorthand := DefaultConfig()
	saslShorthand.SASLMechanisms = []string{"SCRAM-SHA-512"}
	if err := saslShorthand.Validate(); err != nil {
		t.Fatalf("--sasl-mechanisms with --kafka-addr alone: %v", err)
	}
	if ls := saslShorthand.kafkaListeners(); len(ls) != 1 || ls[0].Protocol != kafka.SASLPlaintext {
		t.Fatalf("--sasl-mechanisms with --kafka-addr alone: listeners %+v, want one SASL_PLAINTEXT", ls)
	}
	for name, edit := range map[string]func(*Config){
		"no data dir":               func(c *Config) { c.DataDir = "" },
		"bad kafka addr":            func(c *Config) { c.KafkaAddr = "9092" },
		"bad advertised":            func(c *Config) { c.AdvertisedKafkaAddr = "host" },
		"zero partitions":           func(c *Config) { c.DefaultPartitions = 0 },
		"tiny requests":             func(c *Config) { c.RequestBytesMax = 10 },
		"no producer id expiration": func(c *Config) { c.ProducerIDExpiration = 0 },
		"no transaction timeout":    func(c *Config) { c.TransactionMaxTimeout = 0 },
		"no txn id expiration":      func(c *Config) { c.TransactionalIDExpiration = 0 },
		"super users alone":         func(c *Config) { c.SuperUsers = []auth.Principal{auth.User("admin")} },
		"allow everyone alone":      func(c *Config) { c.AllowEveryoneIfNoACL = true },
		"raft addr without peers":   func(c *Config) { c.RaftAddr = "127.0.0.1:9093" },
		"node not among peers":      func(c *Config) { c.NodeID, c.Peers = 4, map[int32]string{1: "127.0.0.1:1"} },
		"node 0 with peers":         func(c *Config) { c.Peers = map[int32]string{1: "127.0.0.1:1"} },
		"tiny raft tick": func(c *Config) {
			c.NodeID, c.Peers, c.RaftTick = 1, map[int32]string{1: "127.0.0.1:1"}, time.Microsecond
		},
		"election ticks": func(c *Config) {
			c.NodeID, c.Peers, c.RaftElectionTicks = 1, map[int32]string{1: "127.0.0.1:1"}, 1
		},
		"join without a raft addr": func(c *Config) { c.NodeID, c.Join = 4, "127.0.0.1:1" },
		"join with peers": func(c *Config) {
			c.NodeID, c.Join, c.RaftAddr, c.Peers = 4, "127.0.0.1:1", "127.0.0.1:2", map[int32]string{4: "127.0.0.1:2"}
		},
		"join at a bad address": func(c *Config) { c.NodeID, c.Join, c.RaftAddr = 4, "host", "127.0.0.1:2" },
		"join as node 0":        func(c *Config) { c.Join, c.RaftAddr = "127.0.0.1:1", "127.0.0.1:2" },
		"bad advertised http": func(c *Config) {
			c.NodeID, c.Peers, c.AdvertisedHTTPAddr = 1, map[int32]string{1: "127.0.0.1:1"}, "host"
		},
		"sasl listener without mechanisms": func(c *Config) {
			c.Listeners = []Listener{{Name: "S", Protocol: kafka.SASLPlaintext, Addr: "127.0.0.1:0"}}
		},
		"mechanisms without a sasl listener": func(c *Config) {
			c.Listeners = []Listener{{Name: "P", Protocol: kafka.Plaintext, Addr: "127.0.0.1:0"}}
			c.SASLMechanisms = []string{"SCRAM-SHA-512"}
		},
	} {
		c := DefaultConfig()
		edit(&c)
		if c.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
