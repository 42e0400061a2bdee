package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/auth/jwks"
	"github.com/cairnlog/cairn/auth/sasl"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/connectors"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/eventstore"
	"github.com/cairnlog/cairn/groups"
	"github.com/cairnlog/cairn/kafka"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/storage/vfs"
	"github.com/cairnlog/cairn/tlsconf"
)

// Run serves until ctx is done, then shuts down cleanly: listeners close,
// pending syncs finish, partitions record a clean recovery point.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	s, err := Start(cfg, nil, logger)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-s.failed:
		logger.Error("listener failed; shutting down", "err", err)
	}
	return s.Close()
}

// Server is a running Cairn process.
type Server struct {
	cfg        Config
	logger     *slog.Logger
	cluster    *cluster.Cluster
	kafka      *kafka.Server
	listeners  []Listener     // the Kafka listeners, as configured
	kafkaLns   []net.Listener // bound, one per listener
	tls        *tlsconf.Node  // nil without a certificate
	rules      tlsconf.Rules  // client certificate → principal
	httpSrv    *http.Server
	httpLn     net.Listener
	events     *eventstore.Service
	connectors *connectors.Manager
	failed     chan error
	kafkaDone  chan struct{}
	oauthKeys  *jwks.Set // OAUTHBEARER's keys, kept current; nil without OAUTHBEARER
	// authorizer checks the Kafka and event-store APIs against the
	// cluster's ACLs; nil when Config.Authorizer is off.
	authorizer *acl.Authorizer
}

// Start binds the listeners, opens the data directory and starts serving.
// The caller must Close. The ports are bound first, so a start that fails on
// a taken port creates nothing in the data directory; once the Kafka server
// (and its group coordinator) exists, nothing fails any more. The node runs
// in cfg.Env, on fsys and logging to logger unless they are nil.
func Start(cfg Config, fsys vfs.FS, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := cfg.Env
	if fsys != nil {
		e.FS = fsys
	}
	if logger != nil {
		e.Logger = logger
	}
	e = e.Complete()
	cfg.Env, logger = e, e.Logger
	started := e.Clock.Now()
	s := &Server{cfg: cfg, logger: logger, failed: make(chan error, 2+len(cfg.Listeners)), kafkaDone: make(chan struct{}),
		listeners: cfg.kafkaListeners(), authorizer: cfg.authorizer()}
	s.rules, _ = tlsconf.ParseRules(cfg.PrincipalMappingRules) // checked by Validate
	if cfg.TLS.Enabled() {
		var err error
		if s.tls, err = tlsconf.Load(cfg.TLS, e.Clock, logger); err != nil {
			return nil, err
		}
	}
	if err := s.loadOAuthKeys(); err != nil {
		return nil, err
	}
	if err := s.listen(); err != nil {
		return nil, err
	}
	ccfg, err := s.clusterConfig()
	if err != nil {
		s.closeListeners()
		return nil, err
	}
	cl, err := cluster.Open(e, ccfg)
	if err != nil {
		s.closeListeners()
		return nil, fmt.Errorf("open data dir %s: %w", cfg.DataDir, err)
	}
	s.cluster = cl
	kcfg := s.kafkaConfig()
	s.kafka, err = kafka.NewServer(kcfg, cl, logger)
	if err != nil {
		s.closeListeners()
		_ = cl.Close() // the error that matters is NewServer's
		return nil, err
	}
	s.connectors = connectors.New(cl, s.kafka.Txn(), logger)
	s.connectors.Start()
	if s.httpLn != nil {
		s.serveHTTP()
	}
	s.serveKafka()
	logger.Info("cairn serving", "kafka", s.KafkaAddr(), "advertised", kcfg.Listeners[0].AdvertisedAddr, "listeners", len(kcfg.Listeners),
		"http", s.HTTPAddr(), "http_tls", cfg.HTTPTLS, "data_dir", cfg.DataDir, "topics", len(cl.Topics()), "startup", e.Clock.Now().Sub(started).Round(time.Millisecond))
	return s, nil
}

// serveKafka serves each Kafka listener on its goroutine; kafkaDone
// closes once they all returned.
func (s *Server) serveKafka() {
	var wg sync.WaitGroup
	for i, l := range s.listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.kafka.ServeListener(l.Name, s.kafkaLns[i]); err != nil {
				s.failed <- fmt.Errorf("kafka listener %s: %w", l.Name, err)
			}
		}()
	}
	go func() {
		wg.Wait()
		close(s.kafkaDone)
	}()
}

// listen binds the Kafka listeners and, when configured, the HTTP one.
func (s *Server) listen() error {
	for _, l := range s.listeners {
		ln, err := net.Listen("tcp", l.Addr)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("listen kafka %s: %w", l.Name, err)
		}
		s.kafkaLns = append(s.kafkaLns, ln)
	}
	if s.cfg.HTTPAddr == "" {
		return nil
	}
	var err error
	if s.httpLn, err = net.Listen("tcp", s.cfg.HTTPAddr); err != nil {
		s.closeListeners()
		return fmt.Errorf("listen http: %w", err)
	}
	return nil
}

// closeListeners undoes listen after a failed start.
func (s *Server) closeListeners() {
	for _, ln := range s.kafkaLns {
		_ = ln.Close()
	}
	if s.httpLn != nil {
		_ = s.httpLn.Close()
	}
}

// advertised is where clients of the i-th listener are told to connect.
func (s *Server) advertised(i int) string {
	return cmp.Or(s.listeners[i].AdvertisedAddr, s.kafkaLns[i].Addr().String())
}

// clusterConfig is the cluster's configuration; a cluster node registers
// the advertised addresses, by default the ones the listeners bound.
func (s *Server) clusterConfig() (cluster.Config, error) {
	ccfg := cluster.DefaultConfig(s.cfg.DataDir)
	ccfg.DecompressedBatchBytesMax = s.cfg.DecompressedBatchBytesMax
	ccfg.ProducerIDExpirationMs = s.cfg.ProducerIDExpiration.Milliseconds()
	ccfg.NodeID = s.cfg.NodeID
	ccfg.SyncWorkers = s.cfg.SyncWorkers
	if !s.cfg.clustered() {
		return ccfg, nil
	}
	ccfg.Peers, ccfg.RaftAddr, ccfg.Join, ccfg.Rack = s.cfg.Peers, s.cfg.RaftAddr, s.cfg.Join, s.cfg.Rack
	ccfg.PeerDialAddrs = s.cfg.PeerDialAddrs
	ccfg.RaftTickMs, ccfg.RaftElectionTicks = s.cfg.RaftTick.Milliseconds(), s.cfg.RaftElectionTicks
	ccfg.KafkaAddr = s.advertised(0)
	if len(s.cfg.Listeners) > 0 {
		ccfg.KafkaListeners = map[string]string{}
		for i, l := range s.listeners {
			ccfg.KafkaListeners[l.Name] = s.advertised(i)
		}
	}
	if s.cfg.RaftTLS {
		peer, err := s.tls.Peer()
		if err != nil {
			return ccfg, err
		}
		ccfg.TransportTLS = peer
	}
	ccfg.HTTPAddr = s.cfg.AdvertisedHTTPAddr
	if ccfg.HTTPAddr == "" && s.httpLn != nil {
		ccfg.HTTPAddr = s.httpLn.Addr().String()
	}
	return ccfg, nil
}

func (s *Server) kafkaConfig() kafka.Config {
	kcfg := kafka.DefaultConfig()
	for i, l := range s.listeners {
		kl := kafka.Listener{Name: l.Name, Protocol: l.Protocol, AdvertisedAddr: s.advertised(i), PrincipalRules: s.rules}
		if l.Protocol.TLS() {
			kl.TLS = s.tls.Server()
		}
		kcfg.Listeners = append(kcfg.Listeners, kl)
	}
	kcfg.AutoCreateTopics = s.cfg.AutoCreateTopics
	kcfg.DefaultPartitions = s.cfg.DefaultPartitions
	kcfg.RequestBytesMax = s.cfg.RequestBytesMax
	kcfg.ConnectionsMax = s.cfg.ConnectionsMax
	kcfg.InflightRequestsMax = s.cfg.InflightRequestsMax
	kcfg.IdleTimeout = s.cfg.IdleTimeout
	kcfg.SASL.Mechanisms = s.cfg.SASLMechanisms
	kcfg.SASL.SessionLifetime = s.cfg.SASLSessionLifetime
	kcfg.SASL.OAuthBearer = sasl.OAuthConfig{Issuer: s.cfg.SASLOAuthIssuer, Audience: s.cfg.SASLOAuthAudience}
	if s.oauthKeys != nil { // a nil *jwks.Set in the interface would pass Check
		kcfg.SASL.OAuthBearer.Keys = s.oauthKeys
	}
	kcfg.Authorizer = s.authorizer
	kcfg.Txn.TransactionMaxTimeoutMs = s.cfg.TransactionMaxTimeout.Milliseconds()
	kcfg.Txn.IDExpirationMs = s.cfg.TransactionalIDExpiration.Milliseconds()
	kcfg.Clock = s.cfg.Env.Clock
	return kcfg
}

// loadOAuthKeys reads the JWKS, from the file or the URL, OAUTHBEARER
// checks tokens with, when the Kafka listener offers it.
func (s *Server) loadOAuthKeys() error {
	if !slices.Contains(s.cfg.SASLMechanisms, sasl.OAuthBearer) {
		return nil
	}
	e := s.cfg.Env
	var cfg jwks.Config
	switch file, url := s.cfg.SASLOAuthJWKSFile, s.cfg.SASLOAuthJWKSURL; {
	case file != "" && url != "":
		return fmt.Errorf("sasl mechanism %s: give a JWKS file or a JWKS URL, not both", sasl.OAuthBearer)
	case file != "":
		cfg = jwks.FileConfig(e.FS, file, e.Clock, s.logger)
	case url != "":
		var err error
		if cfg, err = jwks.URLConfig(url, nil, e.Clock, s.logger); err != nil {
			return err
		}
	default:
		return fmt.Errorf("sasl mechanism %s needs a JWKS file or URL (--sasl-oauthbearer-jwks-file, --sasl-oauthbearer-jwks-url)", sasl.OAuthBearer)
	}
	keys, err := jwks.Open(cfg)
	if err != nil {
		return err
	}
	s.oauthKeys = keys
	return nil
}

// serveHTTP starts the event-store API, /metrics and /healthz on httpLn.
func (s *Server) serveHTTP() {
	s.events = eventstore.New(s.cluster, eventstore.Config{
		DefaultPartitions: s.cfg.DefaultPartitions,
		AutoCreateTopics:  s.cfg.AutoCreateTopics,
		Authorizer:        s.authorizer,
		Txn:               s.kafka.Txn(),
	}, s.logger)
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	s.httpSrv = &http.Server{Handler: s.withPrincipal(s.withCredentials(s.httpHandler())), ReadHeaderTimeout: 10 * time.Second, Protocols: protocols,
		ErrorLog: slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn)}
	serve := func() error { return s.httpSrv.Serve(s.httpLn) }
	if s.cfg.HTTPTLS {
		protocols.SetHTTP2(true)
		s.httpSrv.TLSConfig = s.tls.Server()
		serve = func() error { return s.httpSrv.ServeTLS(s.httpLn, "", "") }
	} else {
		// gRPC clients speak HTTP/2 without TLS on a loopback or private port.
		protocols.SetUnencryptedHTTP2(true)
	}
	go func() {
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.failed <- fmt.Errorf("http: %w", err)
		}
	}()
}

// KafkaAddr is the first Kafka listener's bound address.
func (s *Server) KafkaAddr() string { return s.kafkaLns[0].Addr().String() }

// ListenerAddr is the bound address of the Kafka listener named name, ""
// when there is none.
func (s *Server) ListenerAddr(name string) string {
	for i, l := range s.listeners {
		if l.Name == name {
			return s.kafkaLns[i].Addr().String()
		}
	}
	return ""
}

// HTTPAddr is the HTTP listener's bound address, "" when disabled.
func (s *Server) HTTPAddr() string {
	if s.httpLn == nil {
		return ""
	}
	return s.httpLn.Addr().String()
}

// Cluster exposes the topics, for tests and embedding.
func (s *Server) Cluster() *cluster.Cluster { return s.cluster }

func (s *Server) httpHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(kafka.Collectors()...)
	reg.MustRegister(partition.Collectors()...)
	reg.MustRegister(eventstore.Collectors()...)
	reg.MustRegister(cluster.Collectors()...)
	reg.MustRegister(newClusterCollector(s.cluster))
	reg.MustRegister(groups.NewCollector(s.kafka.Groups(), s.cluster))
	reg.MustRegister(newTxnCollector(s.kafka.Txn()))
	reg.MustRegister(s.connectors.Collector())
	mux := http.NewServeMux()
	if s.events != nil {
		mux.Handle(s.events.Handler())
	}
	connectorsAPI := s.connectors.Handler(s.authorizer)
	mux.Handle(connectors.PathPrefix, connectorsAPI)
	mux.Handle(connectors.PathPrefix+"/", connectorsAPI)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	// Profiles for operators and benchmarks; the admin listener binds to
	// loopback by default, like the rest of this mux.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/healthz", s.healthz)
	return mux
}

// healthz answers 200 "ok" when the node serves: on a cluster node it is
// a caught-up member of the metadata group (cluster.Health says what that
// checks), and no partition is offline. Otherwise 503 with the reason.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.cluster.Health(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not serving: %v\n", err)
		return
	}
	offline := 0
	for _, t := range s.cluster.Topics() {
		for _, p := range t.Partitions {
			if !p.NoLocalReplica() && (p.Partition == nil || p.Partition.Err() != nil) {
				offline++
			}
		}
	}
	if offline > 0 {
		// The process serves, but an operator must look at the failed partitions.
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "degraded: %d partitions offline\n", offline)
		return
	}
	fmt.Fprintln(w, "ok")
}

// Close stops the node. A cluster node first hands the leadership of what
// it leads to other nodes, serving meanwhile (handOff). Then the listeners
// stop and the cluster closes, which finishes pending syncs and records a
// clean recovery point in every partition.
func (s *Server) Close() error {
	// Connectors first: they write to partitions the hand-off moves away.
	s.connectors.Close()
	s.handOff()
	var errs []error
	if s.httpSrv != nil {
		s.events.Close() // live subscriptions would hold Shutdown to its timeout
		ctx, cancel := env.WithTimeout(context.Background(), s.cfg.Env.Clock, 5*time.Second)
		errs = append(errs, s.httpSrv.Shutdown(ctx))
		cancel()
	}
	if err := s.kafka.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		errs = append(errs, err)
	}
	<-s.kafkaDone
	errs = append(errs, s.cluster.Close())
	s.logger.Info("cairn stopped")
	return errors.Join(errs...)
}

// handOff moves the leadership of every group this cluster node leads to
// another node, bounded by ShutdownTimeout, while the listeners still
// answer: clients asking meanwhile are told the new leader at once rather
// than after an election timeout. What cannot move in time stays; the
// others elect a leader for it once this node is gone.
func (s *Server) handOff() {
	if !s.cfg.clustered() || s.cfg.ShutdownTimeout <= 0 {
		return
	}
	ctx, cancel := env.WithTimeout(context.Background(), s.cfg.Env.Clock, s.cfg.ShutdownTimeout)
	defer cancel()
	rep := s.cluster.HandOff(ctx)
	if len(rep.Moved)+len(rep.Left) == 0 {
		return
	}
	drained := time.Duration(0)
	if len(rep.Moved) > 0 {
		drained = s.drain(ctx)
	}
	s.logger.Info("stopping: handed off leadership", "moved", len(rep.Moved), "left", len(rep.Left),
		"left_groups", rep.Left, "took", rep.Took.Round(time.Millisecond), "drained", drained.Round(time.Millisecond))
}

// Bounds of the drain after a hand-off: clients are deemed gone once no
// Kafka request arrived for drainQuiet, and the wait ends after drainMax
// whatever they do.
const (
	drainQuiet = 200 * time.Millisecond
	drainMax   = 2 * time.Second
)

// drain keeps serving after the hand-off until the Kafka listener has been
// quiet for drainQuiet (at most drainMax, within ctx): a client's request
// for a partition that moved is answered NOT_LEADER_OR_FOLLOWER naming the
// new leader and its address (KIP-951), so the client moves at once; were
// the listener closed instead, it would see a closed connection and wait
// for its next metadata refresh (franz-go: MetadataMinAge, 5 s). It
// returns how long it waited.
func (s *Server) drain(ctx context.Context) time.Duration {
	clock := s.cfg.Env.Clock
	start := clock.Now()
	limit := clock.NewTimer(drainMax)
	defer limit.Stop()
	last := s.kafka.Requests()
	for {
		quiet := clock.NewTimer(drainQuiet)
		select {
		case <-ctx.Done():
			quiet.Stop()
			return clock.Now().Sub(start)
		case <-limit.C():
			quiet.Stop()
			return clock.Now().Sub(start)
		case <-quiet.C():
		}
		now := s.kafka.Requests()
		if now == last {
			return clock.Now().Sub(start)
		}
		last = now
	}
}
