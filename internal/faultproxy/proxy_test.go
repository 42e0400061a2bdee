package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitMax bounds every wait: loopback events that have not happened by
// then will not.
const waitMax = 10 * time.Second

// startEcho starts a TCP echo server that half-closes after its client
// did; it stops (joining its goroutines) at the end of the test.
func startEcho(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := io.Copy(c, c); err == nil {
					_ = c.(*net.TCPConn).CloseWrite()
				}
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

func startProxy(t *testing.T, target string, change func(*Config)) *Proxy {
	t.Helper()
	cfg := Config{Target: target, Seed: 1}
	if change != nil {
		change(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(waitMax))
	return c.(*net.TCPConn)
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo %q, %v; want %q", got, err, msg)
	}
}

func waitHeld(t *testing.T, p *Proxy, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitMax)
	defer cancel()
	if err := p.WaitHeld(ctx, n); err != nil {
		t.Fatalf("held %d bytes, waited for %d: %v", p.Held(), n, err)
	}
}

// TestPass forwards both ways, and a half-close reaches the target and
// comes back.
func TestPass(t *testing.T) {
	p := startProxy(t, startEcho(t), nil)
	c := dial(t, p.Addr())
	roundTrip(t, c, "hello")
	if p.Connections() != 1 {
		t.Fatalf("%d connections", p.Connections())
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after a half-close: %d, %v; want EOF", n, err)
	}
}

// TestBlackholeHoldsThenDelivers: a blackholed direction delivers nothing
// and holds what it read; healed, it delivers it in order.
func TestBlackholeHoldsThenDelivers(t *testing.T) {
	p := startProxy(t, startEcho(t), nil)
	c := dial(t, p.Addr())
	roundTrip(t, c, "warm")

	p.Set(ToTarget, Fault{Kind: Blackhole})
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	waitHeld(t, p, 4)
	p.Set(ToTarget, Fault{Kind: Pass})
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
		t.Fatalf("after healing: %q, %v", got, err)
	}

	p.Set(ToClient, Fault{Kind: Blackhole})
	if _, err := c.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	waitHeld(t, p, 4) // the echo reached the proxy on its way back
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if n, err := c.Read(got); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read through a blackhole: %d bytes, %v", n, err)
	}
	_ = c.SetReadDeadline(time.Now().Add(waitMax))
	p.Set(ToClient, Fault{Kind: Pass})
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "pong" {
		t.Fatalf("after healing: %q, %v", got, err)
	}
}

// TestBlackholeIsBounded: a blackhole holds at most HeldBytesMax (plus one
// chunk) per connection and direction, then stops reading; healed, all of
// it arrives in order.
func TestBlackholeIsBounded(t *testing.T) {
	const heldMax, chunk = 64 << 10, 16 << 10
	p := startProxy(t, startEcho(t), func(c *Config) { c.HeldBytesMax, c.ChunkBytesMax = heldMax, chunk })
	c := dial(t, p.Addr())
	p.Set(ToTarget, Fault{Kind: Blackhole})
	sent := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(sent)
		wrote <- err
	}()
	waitHeld(t, p, heldMax)
	if held := p.Held(); held >= heldMax+chunk {
		t.Fatalf("held %d bytes, bound %d + one chunk of %d", held, heldMax, chunk)
	}
	p.Set(ToTarget, Fault{Kind: Pass})
	got := make([]byte, len(sent))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, sent) {
		t.Fatalf("read %v after healing; equal: %v", err, bytes.Equal(got, sent))
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}

// TestResetDropsConnections: Reset resets open connections and every new
// one while set; back to Pass, connections work again.
func TestResetDropsConnections(t *testing.T) {
	p := startProxy(t, startEcho(t), nil)
	c := dial(t, p.Addr())
	roundTrip(t, c, "before")
	p.Set(ToClient, Fault{Kind: Reset})
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("open connection: %v, want a reset", err)
	}
	// The reset can reach a new connection before its connect returns.
	fresh, err := net.Dial("tcp", p.Addr())
	if err == nil {
		defer fresh.Close()
		_ = fresh.SetDeadline(time.Now().Add(waitMax))
		_, err = fresh.Read(make([]byte, 1))
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("new connection: %v, want a reset", err)
	}
	p.Set(ToClient, Fault{Kind: Pass})
	roundTrip(t, dial(t, p.Addr()), "after")
}

// TestDropCutsConnections: with Drop at probability 1 the first chunk a
// connection carries that way resets it, unlike Reset new connections are
// accepted (and cut as they carry bytes); at probability 0 and back to
// Pass, bytes flow.
func TestDropCutsConnections(t *testing.T) {
	p := startProxy(t, startEcho(t), nil)
	c := dial(t, p.Addr())
	roundTrip(t, c, "before")
	p.Set(ToTarget, Fault{Kind: Drop, Probability: 1})
	if _, err := c.Write([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("open connection: %v, want a reset", err)
	}
	fresh := dial(t, p.Addr())
	if _, err := fresh.Write([]byte("lost too")); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("new connection: %v, want a reset", err)
	}
	p.Set(ToTarget, Fault{Kind: Drop, Probability: 0})
	roundTrip(t, dial(t, p.Addr()), "kept")
	p.Set(ToTarget, Fault{Kind: Pass})
	roundTrip(t, dial(t, p.Addr()), "after")
}

// TestDelayKeepsOrder: delayed chunks arrive no sooner than the fixed
// delay and in the order sent, whatever their jitter.
func TestDelayKeepsOrder(t *testing.T) {
	p := startProxy(t, startEcho(t), nil)
	c := dial(t, p.Addr())
	roundTrip(t, c, "warm")
	const delay = 30 * time.Millisecond
	p.Set(ToTarget, Fault{Kind: Delay, Delay: delay, Jitter: 40 * time.Millisecond})
	p.Set(ToClient, Fault{Kind: Delay, Jitter: 40 * time.Millisecond})
	start := time.Now()
	var want bytes.Buffer
	for i := 0; i < 20; i++ {
		msg := fmt.Sprintf("message %02d;", i)
		want.WriteString(msg)
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, want.Len())
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("got %q, %v", got, err)
	}
	if elapsed := time.Since(start); elapsed < delay {
		t.Fatalf("echo after %v, the delay is %v", elapsed, delay)
	}
}

// TestCloseAll closes every connection cleanly and keeps accepting.
func TestCloseAll(t *testing.T) {
	p := startProxy(t, startEcho(t), nil)
	a, b := dial(t, p.Addr()), dial(t, p.Addr())
	roundTrip(t, a, "a")
	roundTrip(t, b, "b")
	p.CloseAll()
	for _, c := range []net.Conn{a, b} {
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("after CloseAll: %v, want EOF", err)
		}
	}
	if n := p.Connections(); n != 0 {
		t.Fatalf("%d connections after CloseAll", n)
	}
	roundTrip(t, dial(t, p.Addr()), "again")
}

// TestCloseJoinsGoroutines: Close with connections open, one holding bytes
// in a blackhole and one waiting on a delay, ends every goroutine.
func TestCloseJoinsGoroutines(t *testing.T) {
	target := startEcho(t)
	before := runtime.NumGoroutine()
	p, err := New(Config{Target: target})
	if err != nil {
		t.Fatal(err)
	}
	held, delayed := dial(t, p.Addr()), dial(t, p.Addr())
	roundTrip(t, held, "x")
	roundTrip(t, delayed, "y")
	p.Set(ToTarget, Fault{Kind: Delay, Delay: time.Hour})
	if _, err := delayed.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	waitHeld(t, p, 4)
	p.Set(ToClient, Fault{Kind: Blackhole})
	p.Set(ToTarget, Fault{Kind: Pass})
	if _, err := held.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	waitHeld(t, p, 8)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if n := p.Held(); n != 0 {
		t.Fatalf("%d bytes still counted as held", n)
	}
	// The proxy's goroutines have ended; the echo server's end when it
	// sees the connections close, and a goroutine past wg.Done may take a
	// moment to exit.
	for i := 0; runtime.NumGoroutine() > before; i++ {
		if i == 1000 {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}
