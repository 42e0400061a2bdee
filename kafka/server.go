package kafka

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/auth/sasl"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/groups"
	"github.com/cairnlog/cairn/quota"
	"github.com/cairnlog/cairn/txn"
)

// Config is the Kafka listener's configuration; every limit has a default.
type Config struct {
	// AdvertisedAddr is the host:port given to clients in Metadata when
	// Listeners is empty: one PLAINTEXT listener.
	AdvertisedAddr string
	// Listeners are the named listeners, each served by ServeListener
	// (Serve serves the first); empty means one PLAINTEXT listener at
	// AdvertisedAddr.
	Listeners []Listener
	// AutoCreateTopics creates unknown topics named in Metadata requests.
	AutoCreateTopics bool
	// DefaultPartitions is the partition count of auto-created topics and of
	// CreateTopics requests that leave it to the broker (-1).
	DefaultPartitions int32
	// RequestBytesMax bounds one request frame (default 100 MiB).
	RequestBytesMax int32
	// ConnectionsMax bounds open connections (default 10,000).
	ConnectionsMax int
	// InflightRequestsMax bounds replies pending per connection (default 32).
	InflightRequestsMax int
	// IdleTimeout closes a connection that sends nothing for this long
	// (Kafka's connections.max.idle.ms, default 10 minutes).
	IdleTimeout time.Duration
	// WriteTimeout bounds writing one response to a client that does not read.
	WriteTimeout time.Duration
	// FetchWaitMax caps a fetch's max wait, whatever the client asks.
	FetchWaitMax time.Duration
	// FetchSessionsMax bounds the fetch sessions (KIP-227) this node keeps
	// (Kafka's max.incremental.fetch.session.cache.slots, default 1,000);
	// 0 keeps none, and clients fetch in full.
	FetchSessionsMax int
	// Groups configures the consumer-group coordinator.
	Groups groups.Config
	// Txn configures the transaction coordinator.
	Txn txn.Config
	// SASL requires SASL authentication on the listener when its
	// Mechanisms are set (sasl.go); off by default.
	SASL SASLConfig
	// Authorizer, when set, checks every request against the cluster's
	// ACLs (authorize.go); nil allows everything, as Kafka without one.
	Authorizer *acl.Authorizer
	// QuotaWindow is how client quotas are measured (zero: Kafka's 11
	// samples of 1 s).
	QuotaWindow quota.Window
	// Clock measures client quotas and times throttled connections' mute;
	// nil is the wall clock.
	Clock env.Clock
}

// DefaultConfig returns the listener defaults.
func DefaultConfig() Config {
	return Config{
		AutoCreateTopics:    true,
		DefaultPartitions:   1,
		RequestBytesMax:     100 << 20,
		ConnectionsMax:      10000,
		InflightRequestsMax: 32,
		IdleTimeout:         10 * time.Minute,
		WriteTimeout:        30 * time.Second,
		FetchWaitMax:        30 * time.Second,
		FetchSessionsMax:    1000,
		Groups:              groups.DefaultConfig(),
		Txn:                 txn.DefaultConfig(),
		SASL:                DefaultSASLConfig(),
	}
}

// Validate reports the first problem in c.
func (c Config) Validate() error {
	names := map[string]bool{}
	for _, l := range c.listeners() {
		if err := l.validate(); err != nil {
			return err
		}
		if names[l.Name] {
			return fmt.Errorf("listener %s: named twice", l.Name)
		}
		names[l.Name] = true
	}
	switch {
	case c.DefaultPartitions < 1:
		return errors.New("default partitions must be at least 1")
	case c.RequestBytesMax < 1024:
		return errors.New("request bytes max must be at least 1024")
	case c.ConnectionsMax < 1 || c.InflightRequestsMax < 1:
		return errors.New("connections max and inflight requests max must be positive")
	case c.IdleTimeout <= 0 || c.WriteTimeout <= 0 || c.FetchWaitMax <= 0:
		return errors.New("timeouts must be positive")
	case c.FetchSessionsMax < 0:
		return errors.New("fetch sessions max must not be negative")
	}
	if err := c.Txn.Validate(); err != nil {
		return err
	}
	if err := c.SASL.Validate(); err != nil {
		return err
	}
	if err := c.validateSASLListeners(); err != nil {
		return err
	}
	return c.Groups.Validate()
}

// validateSASLListeners refuses a SASL_* listener without mechanisms to
// offer, and mechanisms no listener offers: either is a configuration
// that does not do what its author meant.
func (c Config) validateSASLListeners() error {
	offered := false
	for _, l := range c.listeners() {
		if l.Protocol.SASL() && !c.SASL.Enabled() {
			return fmt.Errorf("listener %s is %s but no SASL mechanism is configured", l.Name, l.Protocol)
		}
		offered = offered || l.Protocol.SASL()
	}
	if c.SASL.Enabled() && !offered {
		return fmt.Errorf("SASL mechanisms %v configured but no listener is SASL_PLAINTEXT or SASL_SSL", c.SASL.Mechanisms)
	}
	return nil
}

// listeners is Listeners, or the one listener at AdvertisedAddr:
// SASL_PLAINTEXT when SASL mechanisms are configured, else PLAINTEXT.
func (c Config) listeners() []Listener {
	if len(c.Listeners) > 0 {
		return c.Listeners
	}
	if c.SASL.Enabled() {
		return []Listener{{Name: DefaultSASLListenerName, Protocol: SASLPlaintext, AdvertisedAddr: c.AdvertisedAddr}}
	}
	return []Listener{{Name: DefaultListenerName, Protocol: Plaintext, AdvertisedAddr: c.AdvertisedAddr}}
}

// Server answers Kafka requests on its listeners.
type Server struct {
	cfg     Config
	cluster *cluster.Cluster
	view    clusterView // the cluster's leaders and brokers; cluster itself outside tests
	logger  *slog.Logger
	groups  *groups.Coordinator
	txn     *txn.Coordinator
	sasl    saslState
	// listeners by name; first is Config's first, which Serve serves.
	listeners map[string]*listener
	first     *listener

	badAddrs sync.Map // badAddress → struct{}: unusable addresses logged already

	slots chan struct{} // one per open connection

	mu           sync.Mutex
	netListeners []net.Listener
	conns        map[*conn]struct{}
	closed       bool
	wg           sync.WaitGroup
	// requests counts the requests read on every connection (Requests).
	requests atomic.Uint64
	// clock and quotas measure clients against the cluster's quotas.
	clock  env.Clock
	quotas *quota.Manager
	// fetchSessions are the KIP-227 fetch sessions (fetchsession.go).
	fetchSessions *fetchSessions
	// placeholderMarker marks a zero-copy fetch's records in its encoded
	// response (zerocopy.go).
	placeholderMarker [8]byte
}

// Requests is how many requests this server has read, on any connection:
// a node stopping after handing off its leaderships watches it to see
// clients move away (their requests here answered with the new leader).
func (s *Server) Requests() uint64 { return s.requests.Load() }

// NewServer builds a server over c.
func NewServer(cfg Config, c *cluster.Cluster, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	coordinator, err := groups.Open(c, cfg.Groups, logger)
	if err != nil {
		return nil, fmt.Errorf("group coordinator: %w", err)
	}
	saslServer, err := sasl.NewServer(c, c.Env().Rand)
	if err == nil && slices.Contains(cfg.SASL.Mechanisms, sasl.OAuthBearer) {
		err = saslServer.EnableOAuthBearer(cfg.SASL.OAuthBearer, c.Env().Clock.Now)
	}
	if err != nil {
		_ = coordinator.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, cluster: c, view: c, logger: logger, groups: coordinator, listeners: map[string]*listener{},
		sasl:  saslState{server: saslServer, limiter: sasl.NewLimiter(cfg.SASL.Limiter)},
		slots: make(chan struct{}, cfg.ConnectionsMax), conns: map[*conn]struct{}{}, clock: cfg.Clock}
	if s.clock == nil {
		s.clock = env.RealClock()
	}
	s.quotas = quota.NewManager(s.clock, cfg.QuotaWindow, c.ClientQuotas)
	s.fetchSessions = newFetchSessions(cfg.FetchSessionsMax, c.Env().Rand)
	s.placeholderMarker = newPlaceholderMarker(c.Env().Rand)
	for i, l := range cfg.listeners() {
		s.listeners[l.Name] = newListener(l)
		if i == 0 {
			s.first = s.listeners[l.Name]
		}
	}
	if s.txn, err = txn.Open(c, cfg.Txn, markerWriter{s}, logger); err != nil {
		_ = coordinator.Close()
		return nil, fmt.Errorf("transaction coordinator: %w", err)
	}
	// Other nodes' transaction requests come over the node-to-node
	// transport (peers.go).
	c.SetNodeRequestHandler(s.serveNode)
	return s, nil
}

// Txn is the transaction coordinator.
func (s *Server) Txn() *txn.Coordinator { return s.txn }

// Groups is the consumer-group coordinator, for metrics.
func (s *Server) Groups() *groups.Coordinator { return s.groups }

// Serve accepts connections of the first listener on l until Close.
func (s *Server) Serve(l net.Listener) error { return s.serve(l, s.first) }

// ServeListener accepts connections of the listener named name on l until
// Close; it may run for several listeners at once.
func (s *Server) ServeListener(name string, l net.Listener) error {
	ln, ok := s.listeners[name]
	if !ok {
		return fmt.Errorf("kafka: no listener named %q", name)
	}
	return s.serve(l, ln)
}

func (s *Server) serve(l net.Listener, ln *listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.netListeners = append(s.netListeners, l)
	s.mu.Unlock()
	if ln.TLS != nil {
		// The handshake runs on the connection's goroutine (conn.serve).
		l = tls.NewListener(l, ln.TLS)
	}
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		select {
		case s.slots <- struct{}{}:
		default:
			connectionsRejected.Inc()
			s.logger.Warn("closing connection: connections max reached", "remote", nc.RemoteAddr().String(), "max", s.cfg.ConnectionsMax)
			_ = nc.Close()
			continue
		}
		c := newConn(s, nc, ln)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			<-s.slots
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			<-s.slots
		}()
	}
}

// Close stops accepting, closes every connection and waits for their
// goroutines. Replies already computed may be lost; acknowledged data is not.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	ls := s.netListeners
	for c := range s.conns {
		c.close()
	}
	s.mu.Unlock()
	var errs []error
	for _, l := range ls {
		errs = append(errs, l.Close())
	}
	err := errors.Join(errs...)
	s.wg.Wait()
	// After the connections: no handler calls the coordinators any more.
	// The transaction coordinator's marker writes call the group one.
	s.cluster.SetNodeRequestHandler(nil)
	_ = s.txn.Close()
	_ = s.groups.Close()
	return err
}
