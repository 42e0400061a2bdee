package server

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/auth"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/tlsconf"
)

// Config is the whole server's configuration. Flags and CAIRN_* environment
// variables map onto it in cmd/cairn.
type Config struct {
	// DataDir holds every partition's segments, topic metadata and producer state.
	DataDir string
	// KafkaAddr is where the Kafka protocol listener binds when Listeners
	// is empty: one PLAINTEXT listener.
	KafkaAddr string
	// AdvertisedKafkaAddr is the host:port returned to clients in Metadata; empty means KafkaAddr.
	AdvertisedKafkaAddr string
	// Listeners, when set, are the Kafka listeners instead of KafkaAddr,
	// each with its security protocol; the first is the one a cluster
	// registers as the node's Kafka address.
	Listeners []Listener
	// TLS is the node's certificate and key, and the CA of client
	// certificates, for SSL and SASL_SSL listeners, HTTPTLS and RaftTLS.
	TLS tlsconf.Files
	// PrincipalMappingRules map a client certificate's subject to its
	// principal (Kafka's ssl.principal.mapping.rules syntax); empty is
	// DEFAULT.
	PrincipalMappingRules string
	// HTTPTLS serves the HTTP listener over TLS with TLS's certificate
	// (and its client CA and client auth).
	HTTPTLS bool
	// HTTPAuth is how the HTTP listener authenticates callers
	// (httpauth.go): HTTPAuthNone (the default: a client certificate's
	// principal, else anonymous), HTTPAuthOptional (an Authorization
	// header, Basic or Bearer, is checked when given) or HTTPAuthRequired
	// (event-store calls must authenticate). HTTPAuthMetrics requires it of
	// /metrics, /healthz and /debug/pprof too.
	HTTPAuth        string
	HTTPAuthMetrics bool
	// RaftTLS runs the connections between cluster nodes over mutual TLS:
	// each node presents TLS's certificate and checks the other's against
	// TLS's client CA.
	RaftTLS bool
	// HTTPAddr serves /metrics and /healthz; empty disables the HTTP listener.
	HTTPAddr string
	// AutoCreateTopics creates unknown topics named in Metadata requests, as Kafka's auto.create.topics.enable.
	AutoCreateTopics bool
	// DefaultPartitions is the partition count of auto-created topics and of CreateTopics without a count.
	DefaultPartitions int32
	// RequestBytesMax bounds one Kafka request frame (default 100 MiB).
	RequestBytesMax int32
	// ConnectionsMax bounds concurrently open Kafka connections (default 10,000).
	ConnectionsMax int
	// InflightRequestsMax bounds requests read from one connection but not yet answered (default 32).
	InflightRequestsMax int
	// IdleTimeout closes a Kafka connection that sends nothing for this long (default 10 minutes).
	IdleTimeout time.Duration
	// DecompressedBatchBytesMax bounds one produced batch's records after decompression (default 64 MiB).
	DecompressedBatchBytesMax int
	// ProducerIDExpiration forgets an idempotent producer that appended nothing
	// to a partition for this long, as Kafka's producer.id.expiration.ms (default 1 day).
	ProducerIDExpiration time.Duration
	// TransactionMaxTimeout caps a transactional producer's
	// transaction.timeout.ms (Kafka's transaction.max.timeout.ms, default
	// 15 minutes); TransactionalIDExpiration forgets a transactional id with
	// no transaction in progress this long after its last change (Kafka's
	// transactional.id.expiration.ms, default 7 days).
	TransactionMaxTimeout     time.Duration
	TransactionalIDExpiration time.Duration
	// SASLMechanisms are the mechanisms the SASL_* listeners offer (PLAIN,
	// SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER; kafka.SASLConfig); a SASL_*
	// listener needs them and they need one. Without Listeners they make
	// KafkaAddr's listener SASL_PLAINTEXT. SASLSessionLifetime is a session's lifetime before
	// the client must re-authenticate (KIP-368; 0: the connection's life).
	SASLMechanisms      []string
	SASLSessionLifetime time.Duration
	// SASLOAuthJWKSFile or SASLOAuthJWKSURL (one of them), SASLOAuthIssuer
	// and SASLOAuthAudience check the tokens of OAUTHBEARER (when
	// SASLMechanisms names it): signed by a key of the JWKS (read at start,
	// then kept current: package jwks), from the issuer, for the audience.
	// The URL is https, or http to a loopback address.
	SASLOAuthJWKSFile string
	SASLOAuthJWKSURL  string
	SASLOAuthIssuer   string
	SASLOAuthAudience string
	// AdvertisedHTTPAddr is the host:port other nodes and clients reach
	// the HTTP listener at (a cluster registers it); empty means HTTPAddr
	// as bound.
	AdvertisedHTTPAddr string

	// Cluster mode: Peers set. NodeID is this node's id, at least 1 on a
	// cluster (a single node reports NodeID, 0 by default, to clients).
	NodeID int32
	// Peers maps every initial voter's node id to its Raft address, this
	// node included; the same map on every node. Empty: a single node.
	Peers map[int32]string
	// RaftAddr is where the node listens for other nodes; empty means its
	// address in Peers. Only with Peers or Join.
	RaftAddr string
	// PeerDialAddrs, by node id, is where this node dials that node instead
	// of the address in Peers or the one it registered: another route to
	// it (a NAT, a proxy), while Peers stays the same on every node.
	PeerDialAddrs map[int32]string
	// Join, instead of Peers, is the Raft address of any member of a
	// running cluster: the node joins it as a learner under a new
	// incarnation, listening (and reached by the others) at RaftAddr,
	// which is then required.
	Join string
	// Rack is the node's rack label, registered with its addresses.
	Rack string
	// RaftTick is one Raft tick of every group on a cluster node (default
	// 50 ms), and RaftElectionTicks its election timeout in ticks (default
	// 12, randomised up to twice it): a failover within about 2 s.
	RaftTick          time.Duration
	RaftElectionTicks int
	// SyncWorkers bounds the fdatasyncs the node's partitions run at once,
	// shared by all of them (0: partition.SyncWorkersDefault): more lets a
	// disk that serves syncs in parallel take more partitions' at once.
	SyncWorkers int
	// ShutdownTimeout bounds how long Close waits, on a cluster node, for
	// the leadership of the partitions (and the metadata group) it leads
	// to move to other nodes before it stops (default 5 s; 0 stops
	// without handing anything off).
	ShutdownTimeout time.Duration

	// Authorizer turns ACL checks on for the Kafka and event-store APIs
	// (default deny: a resource no ACL allows is refused). SuperUsers are
	// allowed everything; AllowEveryoneIfNoACL allows a resource no ACL
	// names at all (Kafka's allow.everyone.if.no.acl.found). Both need
	// Authorizer.
	Authorizer           bool
	SuperUsers           []auth.Principal
	AllowEveryoneIfNoACL bool

	// Env is the node's clock, randomness, filesystem and logger. Unset
	// fields are the real ones (env.Real()); Start's filesystem and logger
	// arguments, when not nil, take the place of Env's.
	Env env.Env
}

// DefaultConfig returns the configuration `cairn serve` uses without flags.
func DefaultConfig() Config {
	return Config{
		DataDir:             "./cairn-data",
		KafkaAddr:           "127.0.0.1:9092",
		HTTPAddr:            "127.0.0.1:8080",
		AutoCreateTopics:    true,
		DefaultPartitions:   1,
		RequestBytesMax:     100 << 20,
		ConnectionsMax:      10000,
		InflightRequestsMax: 32,
		IdleTimeout:         10 * time.Minute,

		DecompressedBatchBytesMax: 64 << 20,
		ProducerIDExpiration:      24 * time.Hour,
		TransactionMaxTimeout:     15 * time.Minute,
		TransactionalIDExpiration: 7 * 24 * time.Hour,

		RaftTick:          cluster.RaftTickMsDefault * time.Millisecond,
		RaftElectionTicks: cluster.RaftElectionTicksDefault,
		ShutdownTimeout:   5 * time.Second,
	}
}

// Validate reports the first configuration problem found.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("data dir must not be empty")
	}
	if _, _, err := net.SplitHostPort(c.KafkaAddr); err != nil && len(c.Listeners) == 0 {
		return fmt.Errorf("kafka addr %q: %w", c.KafkaAddr, err)
	}
	if err := c.validateListeners(); err != nil {
		return err
	}
	if err := c.validateHTTPAuth(); err != nil {
		return err
	}
	if _, err := tlsconf.ParseRules(c.PrincipalMappingRules); err != nil {
		return err
	}
	if c.AdvertisedKafkaAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertisedKafkaAddr); err != nil {
			return fmt.Errorf("advertised kafka addr %q: %w", c.AdvertisedKafkaAddr, err)
		}
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			return fmt.Errorf("http addr %q: %w", c.HTTPAddr, err)
		}
	}
	if c.DefaultPartitions < 1 {
		return fmt.Errorf("default partitions %d: must be at least 1", c.DefaultPartitions)
	}
	if c.RequestBytesMax < 1024 {
		return fmt.Errorf("request bytes max %d: must be at least 1024", c.RequestBytesMax)
	}
	if c.ConnectionsMax < 1 {
		return fmt.Errorf("connections max %d: must be at least 1", c.ConnectionsMax)
	}
	if c.IdleTimeout <= 0 {
		return fmt.Errorf("idle timeout %s: must be positive", c.IdleTimeout)
	}
	if c.DecompressedBatchBytesMax < 1<<20 {
		return fmt.Errorf("decompressed batch bytes max %d: must be at least 1 MiB", c.DecompressedBatchBytesMax)
	}
	if c.ProducerIDExpiration < time.Millisecond {
		return fmt.Errorf("producer id expiration %s: must be at least 1ms", c.ProducerIDExpiration)
	}
	if c.TransactionMaxTimeout < time.Millisecond || c.TransactionalIDExpiration < time.Millisecond {
		return fmt.Errorf("transaction max timeout %s and transactional id expiration %s: must be at least 1ms",
			c.TransactionMaxTimeout, c.TransactionalIDExpiration)
	}
	if !c.Authorizer && (len(c.SuperUsers) > 0 || c.AllowEveryoneIfNoACL) {
		return errors.New("super users and allow-everyone-if-no-acl-found need the authorizer on")
	}
	if c.ShutdownTimeout < 0 {
		return fmt.Errorf("shutdown timeout %s: must not be negative", c.ShutdownTimeout)
	}
	if c.InflightRequestsMax < 1 {
		return fmt.Errorf("inflight requests max %d: must be at least 1", c.InflightRequestsMax)
	}
	return c.validateCluster()
}

// validateCluster checks the cluster-mode settings.
func (c Config) validateCluster() error {
	if c.SyncWorkers < 0 {
		return fmt.Errorf("sync workers %d: must not be negative", c.SyncWorkers)
	}
	if !c.clustered() {
		switch {
		case c.RaftAddr != "":
			return fmt.Errorf("raft addr %q without peers: a single node listens for no other node; give --peers or --join too", c.RaftAddr)
		case c.NodeID < 0:
			return fmt.Errorf("node id %d: must not be negative", c.NodeID)
		case len(c.PeerDialAddrs) > 0:
			return errors.New("peer dial addresses without peers: a single node dials no other node; give --peers or --join too")
		case c.RaftTLS:
			return errors.New("node-to-node TLS without peers: a single node talks to no other node; give --peers or --join too")
		}
		return nil
	}
	if c.AdvertisedHTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertisedHTTPAddr); err != nil {
			return fmt.Errorf("advertised http addr %q: %w", c.AdvertisedHTTPAddr, err)
		}
	}
	if c.RaftTick < time.Millisecond {
		return fmt.Errorf("raft tick %s: must be at least 1ms", c.RaftTick)
	}
	ccfg := cluster.DefaultConfig(c.DataDir)
	ccfg.NodeID, ccfg.Peers, ccfg.RaftAddr, ccfg.Join, ccfg.Rack = c.NodeID, c.Peers, c.RaftAddr, c.Join, c.Rack
	ccfg.PeerDialAddrs = c.PeerDialAddrs
	ccfg.RaftTickMs, ccfg.RaftElectionTicks = c.RaftTick.Milliseconds(), c.RaftElectionTicks
	ccfg.SyncWorkers = c.SyncWorkers
	return ccfg.Validate()
}

// clustered reports whether the node is one of a cluster: started with
// the initial peers, or joining a running cluster.
func (c Config) clustered() bool { return len(c.Peers) > 0 || c.Join != "" }

// ParsePeers reads a peer list, "1=HOST:PORT,2=HOST:PORT,...": every
// initial voter's node id (at least 1, each once) and Raft address.
func ParsePeers(s string) (map[int32]string, error) {
	peers := map[int32]string{}
	if strings.TrimSpace(s) == "" {
		return peers, nil
	}
	for _, item := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return nil, fmt.Errorf("peer %q: want ID=HOST:PORT", item)
		}
		n, err := strconv.ParseInt(id, 10, 32)
		if err != nil || n < 1 || n > meta.NodeIDMax {
			return nil, fmt.Errorf("peer %q: node id %q must be a number between 1 and %d", item, id, meta.NodeIDMax)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("peer %q: address %q is not HOST:PORT", item, addr)
		}
		if _, dup := peers[int32(n)]; dup {
			return nil, fmt.Errorf("peer %q: node %d is listed twice", item, n)
		}
		peers[int32(n)] = addr
	}
	return peers, nil
}

// authorizer is the ACL authorizer of c, nil when checks are off.
func (c Config) authorizer() *acl.Authorizer {
	if !c.Authorizer {
		return nil
	}
	return acl.NewAuthorizer(acl.Config{SuperUsers: c.SuperUsers, AllowEveryoneIfNoACL: c.AllowEveryoneIfNoACL})
}
