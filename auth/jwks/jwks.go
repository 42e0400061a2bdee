package jwks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/cairnlog/cairn/auth/sasl"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/storage/vfs"
)

// Defaults of Config, per kind of source.
const (
	URLRefreshInterval  = 5 * time.Minute
	URLMissRefreshMin   = 10 * time.Second
	FileRefreshInterval = time.Second
	FetchTimeoutDefault = 10 * time.Second
	// BodyBytesMax bounds a JWKS read from a URL or a file: a key set is a
	// few kilobytes; more is a wrong address.
	BodyBytesMax = 1 << 20
)

// Fetch reads the JWKS document once.
type Fetch func(ctx context.Context) ([]byte, error)

// Config is where a Set reads its keys and how often.
type Config struct {
	// Source names the file or URL in logs and errors.
	Source string
	Fetch  Fetch
	// RefreshInterval is the age at which the keys are read again when a
	// token is checked.
	RefreshInterval time.Duration
	// MissRefreshMin is the least time between two reads caused by a
	// token naming an unknown kid.
	MissRefreshMin time.Duration
	// FetchTimeout bounds one read (default FetchTimeoutDefault).
	FetchTimeout time.Duration
	Clock        env.Clock
	Logger       *slog.Logger
}

// FileConfig reads the JWKS file path on fsys, looked at again at most once
// per FileRefreshInterval.
func FileConfig(fsys vfs.FS, path string, clock env.Clock, logger *slog.Logger) Config {
	return Config{
		Source: path,
		Fetch: func(context.Context) ([]byte, error) {
			size, err := fsys.Stat(path)
			if err != nil {
				return nil, fmt.Errorf("read JWKS file %s: %w", path, err)
			}
			if size > BodyBytesMax {
				return nil, fmt.Errorf("JWKS file %s: %d bytes, more than %d", path, size, BodyBytesMax)
			}
			data, err := vfs.ReadFile(fsys, path)
			if err != nil {
				return nil, fmt.Errorf("read JWKS file %s: %w", path, err)
			}
			return data, nil
		},
		RefreshInterval: FileRefreshInterval,
		MissRefreshMin:  FileRefreshInterval,
		Clock:           clock,
		Logger:          logger,
	}
}

// CheckURL accepts an https URL, or an http one whose host is a loopback
// address or localhost.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("JWKS URL: %w", err)
	}
	switch {
	case u.Host == "":
		return fmt.Errorf("JWKS URL %q: no host", raw)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("JWKS URL %q: http only to a loopback address; use https", raw)
	}
	return fmt.Errorf("JWKS URL %q: want https (or http to a loopback address)", raw)
}

// URLConfig fetches the JWKS at rawURL with client (nil: a client that
// follows no redirect, so the keys come from the address configured).
func URLConfig(rawURL string, client *http.Client, clock env.Clock, logger *slog.Logger) (Config, error) {
	if err := CheckURL(rawURL); err != nil {
		return Config{}, err
	}
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return Config{
		Source: rawURL,
		Fetch: func(ctx context.Context) ([]byte, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
			if err != nil {
				return nil, fmt.Errorf("JWKS request: %w", err)
			}
			req.Header.Set("Accept", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				return nil, fmt.Errorf("fetch JWKS: %w", err)
			}
			defer func() { _ = resp.Body.Close() }()
			if resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("fetch JWKS %s: HTTP status %s", rawURL, resp.Status)
			}
			data, err := io.ReadAll(io.LimitReader(resp.Body, BodyBytesMax+1))
			if err != nil {
				return nil, fmt.Errorf("fetch JWKS %s: %w", rawURL, err)
			}
			if len(data) > BodyBytesMax {
				return nil, fmt.Errorf("fetch JWKS %s: more than %d bytes", rawURL, BodyBytesMax)
			}
			return data, nil
		},
		RefreshInterval: URLRefreshInterval,
		MissRefreshMin:  URLMissRefreshMin,
		Clock:           clock,
		Logger:          logger,
	}, nil
}

// Set is a JWKS kept current (see the package comment). It satisfies
// sasl.KeySet and is safe for concurrent use.
type Set struct {
	cfg Config

	// refreshing is held for the whole of a fetch: one at a time, and a
	// token waiting on a kid miss sees the outcome of the one under way.
	refreshing sync.Mutex

	mu          sync.Mutex
	keys        jose.JSONWebKeySet
	content     []byte    // the last document read, parsed or not
	attemptedAt time.Time // the last read, successful or not
	attempts    uint64    // reads begun, to tell whether one ended while waiting
	missAt      time.Time // the last read caused by an unknown kid
}

// Open reads the keys for the first time; an error means the node has no
// keys to check tokens with.
func Open(cfg Config) (*Set, error) {
	if cfg.Fetch == nil || cfg.RefreshInterval <= 0 || cfg.MissRefreshMin < 0 {
		return nil, errors.New("jwks: config needs a fetch and a positive refresh interval")
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = FetchTimeoutDefault
	}
	if cfg.Clock == nil {
		cfg.Clock = env.RealClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Set{cfg: cfg}
	data, err := s.fetch()
	if err != nil {
		return nil, fmt.Errorf("OAUTHBEARER keys: %w", err)
	}
	keys, err := sasl.ParseJWKS(data)
	if err != nil {
		return nil, fmt.Errorf("OAUTHBEARER keys from %s: %w", cfg.Source, err)
	}
	s.keys, s.content, s.attemptedAt = keys, data, cfg.Clock.Now()
	return s, nil
}

// Key returns the keys named kid, reading the source again first when the
// keys are due for a refresh or kid is unknown (see the package comment).
func (s *Set) Key(kid string) []jose.JSONWebKey {
	now := s.cfg.Clock.Now()
	s.mu.Lock()
	keys := s.keys.Key(kid)
	due := now.Sub(s.attemptedAt) >= s.cfg.RefreshInterval
	miss := len(keys) == 0 && now.Sub(s.missAt) >= s.cfg.MissRefreshMin
	seen := s.attempts
	s.mu.Unlock()
	if !due && !miss {
		return keys
	}
	s.refresh(seen, miss, now)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys.Key(kid)
}

// refresh reads the source unless another read ran since the caller saw
// seen reads begun.
func (s *Set) refresh(seen uint64, miss bool, now time.Time) {
	s.refreshing.Lock()
	defer s.refreshing.Unlock()
	s.mu.Lock()
	if s.attempts != seen {
		s.mu.Unlock()
		return
	}
	s.attempts++
	s.attemptedAt = now
	if miss {
		s.missAt = now
	}
	s.mu.Unlock()

	data, err := s.fetch()
	if err != nil {
		s.cfg.Logger.Warn("jwks: refresh failed; keeping the previous keys", "source", s.cfg.Source, "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if bytes.Equal(data, s.content) {
		return
	}
	// Whatever the outcome, this content is not parsed again: a broken
	// document is logged once, and the next change is tried anew.
	s.content = data
	keys, err := sasl.ParseJWKS(data)
	if err != nil {
		s.cfg.Logger.Error("jwks: new key set refused; keeping the previous keys", "source", s.cfg.Source, "err", err)
		return
	}
	s.keys = keys
	s.cfg.Logger.Info("jwks: keys reloaded", "source", s.cfg.Source, "keys", len(keys.Keys))
}

func (s *Set) fetch() ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.FetchTimeout)
	defer cancel()
	return s.cfg.Fetch(ctx)
}
