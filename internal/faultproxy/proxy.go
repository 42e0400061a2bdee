package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Direction is one way of the traffic through the proxy.
type Direction int

const (
	ToTarget Direction = iota // from the client to the target
	ToClient                  // from the target back to the client
)

func (d Direction) String() string {
	if d == ToTarget {
		return "to-target"
	}
	return "to-client"
}

// Kind is what the proxy does with the traffic of one direction.
type Kind int

const (
	// Pass forwards bytes as they arrive.
	Pass Kind = iota
	// Blackhole keeps reading and holds the bytes (up to HeldBytesMax per
	// connection and direction, then stops reading, so the sender's
	// socket fills as it would behind a dead link), delivering nothing. Back
	// to Pass or Delay, the held bytes are delivered, in order: a TCP
	// sender would have retransmitted them.
	Blackhole
	// Reset resets every connection (both sides get a RST) and every new
	// one as soon as it is accepted, as long as it is set on either
	// direction: a connection exists in both directions at once.
	Reset
	// Delay delivers each chunk read Fault.Delay plus a random share of
	// Fault.Jitter after it arrived, never before a chunk read earlier.
	Delay
	// Drop loses each chunk read with probability Fault.Probability and
	// forwards the others as Pass does. TCP cannot lose bytes without
	// breaking its stream (a lost segment is retransmitted or the
	// connection dies), so a lost chunk resets the connection, both sides
	// with a RST and what was queued lost: the link of a flaky network that
	// cuts connections at random. New connections are accepted as usual.
	Drop
)

// Fault is the behaviour of one direction.
type Fault struct {
	Kind   Kind
	Delay  time.Duration // Delay: fixed part
	Jitter time.Duration // Delay: up to this much more, uniformly
	// Drop: the chance in [0, 1] that a chunk read is lost, its connection
	// reset.
	Probability float64
}

// Config configures a Proxy. Zero sizes take the defaults beside them.
type Config struct {
	ListenAddr     string        // default 127.0.0.1:0
	Target         string        // host:port to forward to; required
	ChunkBytesMax  int           // bytes read at once, the unit of delay; 64 KiB
	HeldBytesMax   int           // bytes held per connection and direction; 4 MiB
	ConnectionsMax int           // open connections; 256 (more are closed at accept)
	DialTimeout    time.Duration // to the target; 5 s
	Seed           uint64        // of the delay jitter and the drops, for reproducible runs
}

func (c *Config) setDefaults() error {
	if c.Target == "" {
		return errors.New("faultproxy: no target")
	}
	if c.ListenAddr == "" {
		c.ListenAddr = "127.0.0.1:0"
	}
	defaults := []struct {
		v *int
		d int
	}{
		{&c.ChunkBytesMax, 64 << 10}, {&c.HeldBytesMax, 4 << 20}, {&c.ConnectionsMax, 256},
	}
	for _, f := range defaults {
		if *f.v < 0 {
			return fmt.Errorf("faultproxy: negative bound %d", *f.v)
		}
		if *f.v == 0 {
			*f.v = f.d
		}
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	return nil
}

// Proxy is a userspace TCP proxy whose two directions can be given faults
// at run time, for tests of nodes talking over a bad network (there is no
// tc netem on these machines). Safe for concurrent use.
type Proxy struct {
	cfg      Config
	listener net.Listener
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu      sync.Mutex
	faults  [2]Fault
	changed chan struct{} // closed and replaced when faults or held bytes change
	rand    *rand.Rand
	conns   map[*conn]struct{}
	held    int // bytes held over all connections and directions
	closed  bool
}

// New listens on cfg.ListenAddr and forwards every connection to
// cfg.Target, both directions passing until told otherwise.
func New(cfg Config) (*Proxy, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen on %s: %w", cfg.ListenAddr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		cfg: cfg, listener: l, ctx: ctx, cancel: cancel,
		changed: make(chan struct{}),
		rand:    rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		conns:   map[*conn]struct{}{},
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the address clients connect to instead of the target's.
func (p *Proxy) Addr() string { return p.listener.Addr().String() }

// Set gives direction d the fault f. Reset acts at once on every open
// connection.
func (p *Proxy) Set(d Direction, f Fault) {
	p.mu.Lock()
	p.faults[d] = f
	p.notifyLocked()
	var reset []*conn
	if f.Kind == Reset {
		reset = p.connsLocked()
	}
	p.mu.Unlock()
	for _, c := range reset {
		c.close(true)
	}
}

// SetBoth gives both directions the fault f.
func (p *Proxy) SetBoth(f Fault) {
	p.Set(ToTarget, f)
	p.Set(ToClient, f)
}

// CloseAll closes every open connection (a clean close, FIN both ways);
// new connections are accepted as before.
func (p *Proxy) CloseAll() {
	p.mu.Lock()
	all := p.connsLocked()
	p.mu.Unlock()
	for _, c := range all {
		c.close(false)
	}
}

// Connections is the number of open connections.
func (p *Proxy) Connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Held is the number of bytes read and not yet delivered, over every
// connection and direction.
func (p *Proxy) Held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

// WaitHeld blocks until the proxy holds at least n bytes, or ctx ends: a
// test knows from it that traffic reached a blackhole.
func (p *Proxy) WaitHeld(ctx context.Context, n int) error {
	for {
		p.mu.Lock()
		held, changed := p.held, p.changed
		p.mu.Unlock()
		if held >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops accepting, closes every connection and returns once every
// goroutine of the proxy has ended.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errors.New("faultproxy: closed twice")
	}
	p.closed = true
	all := p.connsLocked()
	p.mu.Unlock()
	p.cancel()
	err := p.listener.Close()
	for _, c := range all {
		c.close(false)
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) connsLocked() []*conn {
	all := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		all = append(all, c)
	}
	return all
}

func (p *Proxy) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// fault returns direction d's fault and a channel closed at the next
// change.
func (p *Proxy) fault(d Direction) (Fault, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults[d], p.changed
}

// due is when a chunk of direction d read at now is to be delivered.
func (p *Proxy) due(d Direction, now time.Time) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.faults[d]
	if f.Kind != Delay {
		return now
	}
	wait := f.Delay
	if f.Jitter > 0 {
		wait += time.Duration(p.rand.Int64N(int64(f.Jitter) + 1))
	}
	return now.Add(wait)
}

// drops reports whether a chunk of direction d just read is lost.
func (p *Proxy) drops(d Direction) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.faults[d]
	return f.Kind == Drop && p.rand.Float64() < f.Probability
}

// addHeld counts bytes read (n > 0) or delivered (n < 0).
func (p *Proxy) addHeld(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held += n
	p.notifyLocked()
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		client, err := p.listener.Accept()
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			// A transient failure (file descriptors): the proxy is for tests,
			// so the test sees the refused connection; pause briefly.
			select {
			case <-time.After(10 * time.Millisecond):
			case <-p.ctx.Done():
				return
			}
			continue
		}
		p.wg.Add(1)
		go p.open(client.(*net.TCPConn))
	}
}

// open dials the target for client and starts forwarding, unless the
// proxy is resetting, full or closed.
func (p *Proxy) open(client *net.TCPConn) {
	defer p.wg.Done()
	d := net.Dialer{Timeout: p.cfg.DialTimeout}
	server, err := d.DialContext(p.ctx, "tcp", p.cfg.Target)
	if err != nil {
		resetConn(client)
		return
	}
	c := &conn{proxy: p, client: client, server: server.(*net.TCPConn), done: make(chan struct{})}
	if !p.register(c) {
		resetConn(client)
		resetConn(c.server)
		return
	}
	c.start()
}

// register records c as open; false when it must be refused.
func (p *Proxy) register(c *conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.conns) >= p.cfg.ConnectionsMax ||
		p.faults[ToTarget].Kind == Reset || p.faults[ToClient].Kind == Reset {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) unregister(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

// resetConn closes conn with a RST rather than a FIN.
func resetConn(conn *net.TCPConn) {
	_ = conn.SetLinger(0)
	conn.Close()
}
