package sasl

import (
	"time"
)

// LimiterConfig shapes the per-address token bucket of failed
// authentications.
type LimiterConfig struct {
	// Burst is how many failures an address may have in a row before it is
	// refused (default 5).
	Burst int
	// Refill is the time one failure takes to be forgiven (default 2 s).
	Refill time.Duration
	// AddressesMax bounds the addresses tracked (default 10,000); past it
	// the fullest buckets are forgotten first.
	AddressesMax int
}

// DefaultLimiterConfig: 5 failures in a row, then one more every 2 s.
func DefaultLimiterConfig() LimiterConfig {
	return LimiterConfig{Burst: 5, Refill: 2 * time.Second, AddressesMax: 10_000}
}

// Limiter counts failed authentications per source address. It is pure
// (time is passed in) and not safe for concurrent use.
type Limiter struct {
	cfg     LimiterConfig
	buckets map[string]bucket
}

// bucket is an address's tokens as of a time: tokens are spent by
// failures and come back one per Refill, up to Burst.
type bucket struct {
	tokens float64
	at     time.Time
}

// NewLimiter returns an empty limiter.
func NewLimiter(cfg LimiterConfig) *Limiter {
	return &Limiter{cfg: cfg, buckets: map[string]bucket{}}
}

func (l *Limiter) current(addr string, now time.Time) bucket {
	b, ok := l.buckets[addr]
	if !ok {
		return bucket{tokens: float64(l.cfg.Burst), at: now}
	}
	if elapsed := now.Sub(b.at); elapsed > 0 {
		b.tokens = min(float64(l.cfg.Burst), b.tokens+float64(elapsed)/float64(l.cfg.Refill))
	}
	b.at = now
	return b
}

// Allowed reports whether addr may try to authenticate now: it has a token
// left.
func (l *Limiter) Allowed(addr string, now time.Time) bool {
	return l.current(addr, now).tokens >= 1
}

// Failed spends one of addr's tokens.
func (l *Limiter) Failed(addr string, now time.Time) {
	b := l.current(addr, now)
	b.tokens = max(0, b.tokens-1)
	if _, ok := l.buckets[addr]; !ok && len(l.buckets) >= l.cfg.AddressesMax {
		l.forget(now)
	}
	l.buckets[addr] = b
}

// forget drops the buckets that have refilled, or, when none has, an
// arbitrary one: the bound on memory wins over one address's count.
func (l *Limiter) forget(now time.Time) {
	for addr := range l.buckets {
		if l.current(addr, now).tokens >= float64(l.cfg.Burst) {
			delete(l.buckets, addr)
		}
	}
	for addr := range l.buckets {
		if len(l.buckets) < l.cfg.AddressesMax {
			return
		}
		delete(l.buckets, addr)
	}
}
