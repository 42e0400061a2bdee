package kafka

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnlog/cairn/auth/sasl"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/groups"
)

// Config is the Kafka listener's configuration; every limit has a default.
type Config struct {
	// AdvertisedAddr is the host:port given to clients in Metadata.
	AdvertisedAddr string
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
	// Groups configures the consumer-group coordinator.
	Groups groups.Config
	// SASL requires SASL authentication on the listener when its
	// Mechanisms are set (sasl.go); off by default.
	SASL SASLConfig
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
		Groups:              groups.DefaultConfig(),
		SASL:                DefaultSASLConfig(),
	}
}

// Validate reports the first problem in c.
func (c Config) Validate() error {
	if _, port, err := net.SplitHostPort(c.AdvertisedAddr); err != nil {
		return fmt.Errorf("advertised addr %q: %w", c.AdvertisedAddr, err)
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("advertised addr %q: bad port", c.AdvertisedAddr)
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
	}
	if err := c.SASL.Validate(); err != nil {
		return err
	}
	return c.Groups.Validate()
}

// Server answers Kafka requests on one listener.
type Server struct {
	cfg     Config
	cluster *cluster.Cluster
	view    clusterView // the cluster's leaders and brokers; cluster itself outside tests
	logger  *slog.Logger
	host    string
	port    int32
	groups  *groups.Coordinator
	sasl    saslState

	badAddrs sync.Map // cluster.Broker → struct{}: unusable addresses logged already

	slots chan struct{} // one per open connection

	mu       sync.Mutex
	listener net.Listener
	conns    map[*conn]struct{}
	closed   bool
	wg       sync.WaitGroup
	// requests counts the requests read on every connection (Requests).
	requests atomic.Uint64
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
	host, portText, _ := net.SplitHostPort(cfg.AdvertisedAddr)
	port, _ := strconv.ParseUint(portText, 10, 16)
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
	return &Server{cfg: cfg, cluster: c, view: c, logger: logger, host: host, port: int32(port), groups: coordinator,
		sasl:  saslState{server: saslServer, limiter: sasl.NewLimiter(cfg.SASL.Limiter)},
		slots: make(chan struct{}, cfg.ConnectionsMax), conns: map[*conn]struct{}{}}, nil
}

// Groups is the consumer-group coordinator, for metrics.
func (s *Server) Groups() *groups.Coordinator { return s.groups }

// Serve accepts connections on l until Close.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.listener = l
	s.mu.Unlock()
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
		c := newConn(s, nc)
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
	l := s.listener
	for c := range s.conns {
		c.close()
	}
	s.mu.Unlock()
	var err error
	if l != nil {
		err = l.Close()
	}
	s.wg.Wait()
	// After the connections: no handler calls the coordinator any more.
	_ = s.groups.Close()
	return err
}
