package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/eventstore"
	"github.com/cairnlog/cairn/groups"
	"github.com/cairnlog/cairn/kafka"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/storage/vfs"
)

// Run serves until ctx is done, then shuts down cleanly: listeners close,
// pending syncs finish, partitions record a clean recovery point.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	s, err := Start(cfg, vfs.Default(), logger)
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
	cfg       Config
	logger    *slog.Logger
	cluster   *cluster.Cluster
	kafka     *kafka.Server
	kafkaLn   net.Listener
	httpSrv   *http.Server
	httpLn    net.Listener
	events    *eventstore.Service
	failed    chan error
	kafkaDone chan struct{}
}

// Start opens the data directory and starts listening. The caller must Close.
func Start(cfg Config, fsys vfs.FS, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	started := time.Now()
	ccfg := cluster.DefaultConfig(cfg.DataDir)
	ccfg.DecompressedBatchBytesMax = cfg.DecompressedBatchBytesMax
	cl, err := cluster.Open(fsys, ccfg, logger)
	if err != nil {
		return nil, fmt.Errorf("open data dir %s: %w", cfg.DataDir, err)
	}
	s := &Server{cfg: cfg, logger: logger, cluster: cl, failed: make(chan error, 2), kafkaDone: make(chan struct{})}
	s.kafkaLn, err = net.Listen("tcp", cfg.KafkaAddr)
	if err != nil {
		_ = cl.Close()
		return nil, fmt.Errorf("listen kafka: %w", err)
	}
	kcfg := kafka.DefaultConfig()
	kcfg.AdvertisedAddr = cfg.AdvertisedKafkaAddr
	if kcfg.AdvertisedAddr == "" {
		kcfg.AdvertisedAddr = s.kafkaLn.Addr().String()
	}
	kcfg.AutoCreateTopics = cfg.AutoCreateTopics
	kcfg.DefaultPartitions = cfg.DefaultPartitions
	kcfg.RequestBytesMax = cfg.RequestBytesMax
	kcfg.ConnectionsMax = cfg.ConnectionsMax
	kcfg.InflightRequestsMax = cfg.InflightRequestsMax
	kcfg.IdleTimeout = cfg.IdleTimeout
	s.kafka, err = kafka.NewServer(kcfg, cl, logger)
	if err != nil {
		_ = s.kafkaLn.Close()
		_ = cl.Close()
		return nil, err
	}
	if cfg.HTTPAddr != "" {
		if s.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			_ = s.kafkaLn.Close()
			_ = cl.Close()
			return nil, fmt.Errorf("listen http: %w", err)
		}
		s.events = eventstore.New(cl, eventstore.Config{
			DefaultPartitions: cfg.DefaultPartitions,
			AutoCreateTopics:  cfg.AutoCreateTopics,
		}, logger)
		// gRPC clients speak HTTP/2 without TLS on a loopback or private port.
		protocols := new(http.Protocols)
		protocols.SetHTTP1(true)
		protocols.SetUnencryptedHTTP2(true)
		s.httpSrv = &http.Server{Handler: s.httpHandler(), ReadHeaderTimeout: 10 * time.Second, Protocols: protocols}
		go func() {
			if err := s.httpSrv.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.failed <- fmt.Errorf("http: %w", err)
			}
		}()
	}
	go func() {
		defer close(s.kafkaDone)
		if err := s.kafka.Serve(s.kafkaLn); err != nil {
			s.failed <- fmt.Errorf("kafka: %w", err)
		}
	}()
	logger.Info("cairn serving", "kafka", s.kafkaLn.Addr().String(), "advertised", kcfg.AdvertisedAddr,
		"http", s.HTTPAddr(), "data_dir", cfg.DataDir, "topics", len(cl.Topics()), "startup", time.Since(started).Round(time.Millisecond))
	return s, nil
}

// KafkaAddr is the Kafka listener's bound address.
func (s *Server) KafkaAddr() string { return s.kafkaLn.Addr().String() }

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
	reg.MustRegister(newClusterCollector(s.cluster))
	reg.MustRegister(groups.NewCollector(s.kafka.Groups(), s.cluster))
	mux := http.NewServeMux()
	if s.events != nil {
		mux.Handle(s.events.Handler())
	}
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	// Profiles for operators and benchmarks; the admin listener binds to
	// loopback by default, like the rest of this mux.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		offline := 0
		for _, t := range s.cluster.Topics() {
			for _, p := range t.Partitions {
				if p.Partition == nil || p.Partition.Err() != nil {
					offline++
				}
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if offline > 0 {
			// The process serves, but an operator must look at the failed partitions.
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "degraded: %d partitions offline\n", offline)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// Close stops the listeners, then closes the cluster, which finishes pending
// syncs and records a clean recovery point in every partition.
func (s *Server) Close() error {
	var errs []error
	if s.httpSrv != nil {
		s.events.Close() // live subscriptions would hold Shutdown to its timeout
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
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
