package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/kafka"
	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/storage/vfs"
)

// serveFS gives the filesystem serve runs on; nil is the operating system's.
// Only the lossyfs build (lossyfs.go) replaces it, for fault tests.
var serveFS = func(dataDir string) (vfs.FS, error) { return nil, nil }

func newServeCommand() *cobra.Command {
	cfg := server.DefaultConfig()
	var advertised []string // --advertise-listener, applied once every listener is known
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a Cairn broker: a single node, or one node of a cluster",
		Long: `Run a Cairn broker: a durable, segmented log served over the Kafka
protocol on --kafka-addr, with the event-store API, /metrics and /healthz on
--http-addr.

Without --peers the node is a cluster of its own. With --peers it is one node
of a cluster whose partitions are replicated with Raft: start every node with
the same --peers list (each initial node's id and Raft address), its own
--node-id and data directory. A new node waits (up to 5 minutes) for a quorum
of its peers before it serves. Other nodes and clients reach it at the
--advertise-kafka and --advertise-http addresses (default: the listen
addresses), which it registers in the cluster with its --rack.

A node added later is started with --join HOST:PORT (the Raft address of any
running member) instead of --peers, and its own --raft-addr, which the other
nodes dial: it joins as a learner under a new incarnation, gets the cluster's
metadata and becomes ACTIVE once caught up; then "cairn cluster add-node ID"
moves a fair share of partition replicas onto it. Restart it with the same
flags.

SIGINT or SIGTERM shut it down cleanly: a cluster node first hands the
leadership of every partition it leads to an in-sync replica on another node
(waiting up to --shutdown-timeout) while it still serves, then pending syncs
finish and files close, so the next start needs no recovery scan.

Several Kafka listeners, each with its security protocol, replace
--kafka-addr with --listener NAME=PROTOCOL://HOST:PORT (repeated; PROTOCOL is
PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL) and --advertise-listener
NAME=HOST:PORT. A client is given every broker's address for the listener it
connected to. SSL listeners, --http-tls and --raft-tls use --tls-cert-file and
--tls-key-file, reloaded when the files change; --tls-client-ca-file asks
clients for certificates (--tls-client-auth), whose subject names the
connection's principal through --tls-principal-mapping-rules. See
docs/security.md.`,
		Example: `  cairn serve
  cairn serve --data-dir /var/lib/cairn --kafka-addr 127.0.0.1:19092
  CAIRN_DEFAULT_PARTITIONS=3 cairn serve

  # node 1 of three on one machine; nodes 2 and 3 change the id, data dir and ports
  cairn serve --node-id 1 --data-dir d1 --kafka-addr 127.0.0.1:19092 --http-addr 127.0.0.1:18080 \
    --raft-addr 127.0.0.1:19093 --peers 1=127.0.0.1:19093,2=127.0.0.1:29093,3=127.0.0.1:39093

  # plaintext on loopback for local tools, TLS with client certificates outside
  cairn serve --listener LOCAL=PLAINTEXT://127.0.0.1:9092 --listener EXTERNAL=SSL://0.0.0.0:9093 \
    --advertise-listener EXTERNAL=kafka1.example.com:9093 \
    --tls-cert-file node.pem --tls-key-file node-key.pem --tls-client-ca-file clients-ca.pem \
    --tls-principal-mapping-rules 'RULE:^CN=(.*?),OU=.*$/$1/,DEFAULT'

  # a fourth node joining that cluster through node 1
  cairn serve --node-id 4 --data-dir d4 --kafka-addr 127.0.0.1:49092 --http-addr 127.0.0.1:48080 \
    --raft-addr 127.0.0.1:49093 --join 127.0.0.1:19093`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(cfg.Listeners) > 0 && cmd.Flags().Changed("kafka-addr") {
				if err := addKafkaAddrListener(&cfg); err != nil {
					return err
				}
			}
			if err := applyAdvertisedListeners(&cfg, advertised); err != nil {
				return err
			}
			fsys, err := serveFS(cfg.DataDir)
			if err != nil {
				return err
			}
			cfg.Env.FS = fsys
			ctx, stop := interruptContext(cmd.Context())
			defer stop()
			logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
			return server.Run(ctx, cfg, logger)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory holding the log, topic metadata and producer state")
	f.StringVar(&cfg.KafkaAddr, "kafka-addr", cfg.KafkaAddr, "address of the Kafka protocol listener")
	f.StringVar(&cfg.AdvertisedKafkaAddr, "advertise-kafka", "", "HOST:PORT given to clients in metadata and registered in the cluster (default: --kafka-addr as bound)")
	f.StringVar(&cfg.AdvertisedKafkaAddr, "advertised-kafka-addr", "", "older name of --advertise-kafka")
	f.StringVar(&cfg.AdvertisedHTTPAddr, "advertise-http", "", "HOST:PORT where other nodes and clients reach --http-addr, registered in the cluster (default: --http-addr as bound)")
	f.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "address serving the event-store API (gRPC, gRPC-Web and JSON), the connectors API, /metrics and /healthz (empty disables it)")
	f.BoolVar(&cfg.AutoCreateTopics, "auto-create-topics", cfg.AutoCreateTopics, "create unknown topics on first metadata request or produce")
	f.Int32Var(&cfg.DefaultPartitions, "default-partitions", cfg.DefaultPartitions, "partitions of auto-created topics")
	f.Int32Var(&cfg.RequestBytesMax, "request-bytes-max", cfg.RequestBytesMax, "largest Kafka request frame accepted; larger ones close the connection")
	f.IntVar(&cfg.ConnectionsMax, "connections-max", cfg.ConnectionsMax, "most Kafka connections open at once; more are closed on accept")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "close a Kafka connection that sends nothing for this long")
	f.IntVar(&cfg.DecompressedBatchBytesMax, "decompressed-batch-bytes-max", cfg.DecompressedBatchBytesMax, "largest produced batch after decompression; larger ones are refused (INVALID_RECORD)")
	f.DurationVar(&cfg.ProducerIDExpiration, "producer-id-expiration", cfg.ProducerIDExpiration, "forget an idempotent producer idle this long on a partition (Kafka's producer.id.expiration.ms)")
	f.DurationVar(&cfg.TransactionMaxTimeout, "transaction-max-timeout", cfg.TransactionMaxTimeout, "largest transaction timeout a transactional producer may ask for (Kafka's transaction.max.timeout.ms)")
	f.DurationVar(&cfg.TransactionalIDExpiration, "transactional-id-expiration", cfg.TransactionalIDExpiration, "forget a transactional id without a transaction in progress this long after its last change (Kafka's transactional.id.expiration.ms)")
	f.IntVar(&cfg.InflightRequestsMax, "inflight-requests-max", cfg.InflightRequestsMax, "most requests per connection read but not yet answered")
	f.Int32Var(&cfg.NodeID, "node-id", cfg.NodeID, "this node's id: at least 1 and one of the --peers ids in a cluster; a single node reports it to clients")
	f.StringVar(&cfg.RaftAddr, "raft-addr", "", "HOST:PORT this node listens on for other nodes (default: its address in --peers); only with --peers or --join, which requires it")
	f.StringVar(&cfg.Join, "join", "", "HOST:PORT, the Raft address of any member of a running cluster: join it as a new node (instead of --peers)")
	f.Var(&peersValue{peers: &cfg.Peers}, "peers", "every initial node of the cluster as ID=HOST:PORT (its Raft address), comma-separated, this node included; the same list on every node")
	f.Var(&mechanismsValue{mechanisms: &cfg.SASLMechanisms}, "sasl-mechanisms", "SASL mechanisms of the SASL_PLAINTEXT and SASL_SSL listeners (with --kafka-addr alone, it makes that listener SASL_PLAINTEXT), comma-separated: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (users: cairn user create), OAUTHBEARER (JWTs: --sasl-oauthbearer-*)")
	f.StringVar(&cfg.SASLOAuthJWKSFile, "sasl-oauthbearer-jwks-file", "", "JSON Web Key Set (public keys) that OAUTHBEARER tokens must be signed by, read at start and again when it changes")
	f.StringVar(&cfg.SASLOAuthJWKSURL, "sasl-oauthbearer-jwks-url", "", "URL of the JSON Web Key Set instead of a file (https, or http to a loopback address): fetched at start, every 5 minutes and when a token names an unknown key (at most every 10 s)")
	f.StringVar(&cfg.SASLOAuthIssuer, "sasl-oauthbearer-issuer", "", "the issuer (iss) OAUTHBEARER tokens must name")
	f.StringVar(&cfg.SASLOAuthAudience, "sasl-oauthbearer-audience", "", "an audience (aud) OAUTHBEARER tokens must name")
	f.DurationVar(&cfg.SASLSessionLifetime, "sasl-session-lifetime", 0, "how long a SASL authentication holds before the client must re-authenticate on its connection (KIP-368; 0: for the connection's life)")
	f.Var(&peersValue{peers: &cfg.PeerDialAddrs}, "peer-dial-addr", "ID=HOST:PORT,...: dial those nodes at these addresses instead of their --peers (or registered) ones, e.g. through a NAT or a proxy; --peers stays the same on every node")
	f.StringVar(&cfg.Rack, "rack", "", "this node's rack label, registered in the cluster")
	f.DurationVar(&cfg.RaftTick, "raft-tick", cfg.RaftTick, "one Raft tick of every partition and the metadata group on a cluster node")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "on SIGINT or SIGTERM, how long a cluster node waits for the leadership of what it leads to move to other nodes before it stops (0: stop at once)")
	f.IntVar(&cfg.SyncWorkers, "sync-workers", cfg.SyncWorkers, "fdatasyncs the node's partitions run at once, shared by all (0: 64)")
	f.IntVar(&cfg.RaftElectionTicks, "raft-election-ticks", cfg.RaftElectionTicks, "Raft election timeout in ticks (randomised up to twice it); heartbeats go every 2 ticks")
	f.BoolVar(&cfg.Authorizer, "authorizer", false, "check every Kafka and event-store request against the cluster's ACLs (cairn acl); a resource no ACL allows is refused")
	f.Var(&principalsValue{principals: &cfg.SuperUsers}, "super-users", "with --authorizer, principals allowed everything, comma-separated: User:admin,User:ops")
	f.BoolVar(&cfg.AllowEveryoneIfNoACL, "allow-everyone-if-no-acl-found", false, "with --authorizer, allow everyone a resource no ACL names (Kafka's allow.everyone.if.no.acl.found)")
	addSecurityFlags(cmd, &cfg, &advertised)
	return cmd
}

// peersValue is --peers: ID=HOST:PORT,... parsed by server.ParsePeers.
type peersValue struct {
	peers *map[int32]string
	raw   string
}

func (v *peersValue) String() string { return v.raw }

func (v *peersValue) Set(s string) error {
	peers, err := server.ParsePeers(s)
	if err != nil {
		return err
	}
	*v.peers, v.raw = peers, s
	return nil
}

func (v *peersValue) Type() string { return "list" }

// mechanismsValue is --sasl-mechanisms: a comma list, checked by
// kafka.SASLConfig.
type mechanismsValue struct {
	mechanisms *[]string
	raw        string
}

func (v *mechanismsValue) String() string { return v.raw }

func (v *mechanismsValue) Set(s string) error {
	list := kafka.ParseMechanisms(s)
	if err := kafka.CheckMechanisms(list); err != nil {
		return err
	}
	*v.mechanisms, v.raw = list, s
	return nil
}

func (v *mechanismsValue) Type() string { return "list" }
