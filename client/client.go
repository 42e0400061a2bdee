package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/cairnlog/cairn/api/cairn/eventstore/v1/eventstorev1connect"
	"github.com/cairnlog/cairn/client/internal/backoff"
)

// Defaults of the options.
const (
	// DefaultRetryAttempts is how many times a call is tried when the
	// server is unavailable.
	DefaultRetryAttempts = 3
	// DefaultRetryBackoff is the pause before the second attempt; it
	// doubles for each further one, with jitter.
	DefaultRetryBackoff = 100 * time.Millisecond
	// DefaultMessageBytesMax bounds one response message, as the server
	// bounds requests.
	DefaultMessageBytesMax = 64 << 20

	retryBackoffMax = 2 * time.Second
)

// Client calls a Cairn server's event-store API. It is safe for concurrent use.
type Client struct {
	rpc     eventstorev1connect.EventStoreClient
	retries int
	backoff time.Duration
	// ownHTTP is the HTTP client New made, nil when the caller gave one.
	ownHTTP *http.Client
}

type config struct {
	httpClient     connect.HTTPClient
	grpc           bool
	connectOptions []connect.ClientOption
	retries        int
	backoff        time.Duration
	tls            *tls.Config
}

// Option configures a Client.
type Option func(*config)

// WithHTTPClient sends requests through c instead of the client's own. For
// subscriptions over http:// it must speak HTTP/2 without TLS (h2c), as the
// default does; a gRPC client needs HTTP/2 in any case.
func WithHTTPClient(c connect.HTTPClient) Option {
	return func(cfg *config) { cfg.httpClient = c }
}

// WithTLS sets the TLS configuration of the client's own HTTP client for
// https:// URLs: the CAs the server's certificate is checked against, and
// a client certificate for a server that asks for one. Without it the
// system's CAs are used. It has no effect with WithHTTPClient.
func WithTLS(cfg *tls.Config) Option {
	return func(c *config) { c.tls = cfg }
}

// WithGRPC speaks the gRPC protocol instead of Connect's.
func WithGRPC() Option {
	return func(cfg *config) { cfg.grpc = true }
}

// WithConnectOptions passes options to the underlying connect client
// (interceptors, compression, codecs).
func WithConnectOptions(opts ...connect.ClientOption) Option {
	return func(cfg *config) { cfg.connectOptions = append(cfg.connectOptions, opts...) }
}

// WithRetry sets how many times a call is tried while the server is
// unavailable (1: no retry) and the pause before the second attempt.
// Appends are safe to retry: their event ids are fixed before the first
// attempt, so a retry of an append that was written answers Duplicate.
func WithRetry(attempts int, backoff time.Duration) Option {
	return func(cfg *config) { cfg.retries, cfg.backoff = attempts, backoff }
}

// New returns a client of the server at baseURL, e.g. http://127.0.0.1:8080.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("cairn client: base URL %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("cairn client: base URL %q: want http://host:port or https://host:port", baseURL)
	}
	cfg := config{retries: DefaultRetryAttempts, backoff: DefaultRetryBackoff}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.retries < 1 {
		return nil, fmt.Errorf("cairn client: %d retry attempts: at least 1", cfg.retries)
	}
	if cfg.backoff < 0 {
		return nil, fmt.Errorf("cairn client: negative retry backoff %s", cfg.backoff)
	}
	var own *http.Client
	if cfg.httpClient == nil {
		own = newHTTPClient(u.Scheme, cfg.tls)
		cfg.httpClient = own
	}
	copts := []connect.ClientOption{connect.WithReadMaxBytes(DefaultMessageBytesMax), connect.WithSendMaxBytes(DefaultMessageBytesMax)}
	if cfg.grpc {
		copts = append(copts, connect.WithGRPC())
	}
	copts = append(copts, connect.WithInterceptors(lostConnection{}))
	copts = append(copts, cfg.connectOptions...)
	return &Client{
		rpc:     eventstorev1connect.NewEventStoreClient(cfg.httpClient, strings.TrimSuffix(baseURL, "/"), copts...),
		retries: cfg.retries,
		backoff: cfg.backoff,
		ownHTTP: own,
	}, nil
}

// Close closes the idle connections of the HTTP client New made (not of
// one given WithHTTPClient). Calls made afterwards open new ones.
func (c *Client) Close() {
	if c.ownHTTP != nil {
		c.ownHTTP.CloseIdleConnections()
	}
}

// RPC is the generated connect client underneath, for what this package
// does not wrap.
func (c *Client) RPC() eventstorev1connect.EventStoreClient { return c.rpc }

// newHTTPClient speaks HTTP/2 on every connection: over TLS by ALPN, and on
// http:// URLs with prior knowledge (h2c), which server streaming and gRPC
// need. It has no overall timeout, which would cut subscriptions; pings
// find dead connections instead.
func newHTTPClient(scheme string, tlsCfg *tls.Config) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if tlsCfg != nil {
		t.TLSClientConfig = tlsCfg.Clone()
	}
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	protocols := new(http.Protocols)
	if scheme == "http" {
		protocols.SetUnencryptedHTTP2(true)
	} else {
		protocols.SetHTTP1(true)
		protocols.SetHTTP2(true)
	}
	t.Protocols = protocols
	t.HTTP2 = &http.HTTP2Config{SendPingTimeout: 15 * time.Second, PingTimeout: 10 * time.Second}
	return &http.Client{Transport: t}
}

// retry runs call until it succeeds, fails for a reason other than the
// server being unavailable, or has been tried c.retries times.
func (c *Client) retry(ctx context.Context, call func() error) error {
	policy := backoff.Policy{Initial: c.backoff, Max: retryBackoffMax}
	for attempt := 1; ; attempt++ {
		err := call()
		if err == nil || !retryable(err) || attempt >= c.retries {
			return err
		}
		if err := backoff.Sleep(ctx, policy.Pause(attempt)); err != nil {
			return err
		}
	}
}
