package env

import (
	"context"
	"sync"
	"time"
)

// Clock is where a component reads the time and sets its timers.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that sends the time on C once d has passed.
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer. Stop and Reset follow time.Timer's semantics
// since Go 1.23: after either returns, no value from before it is received.
type Timer interface {
	C() <-chan time.Time
	// Stop disarms the timer; true when it was armed.
	Stop() bool
	// Reset re-arms the timer to fire after d; true when it was armed.
	Reset(d time.Duration) bool
	// ResetAt re-arms the timer to fire at deadline, at once when it has
	// passed; true when it was armed. A component whose deadlines are
	// instants uses it rather than Reset(deadline.Sub(Now())), which would
	// arm late on a clock that moved between the two reads.
	ResetAt(deadline time.Time) bool
}

// RealClock is the wall clock and the runtime's timers.
func RealClock() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }
func (r realTimer) ResetAt(deadline time.Time) bool {
	return r.t.Reset(time.Until(deadline))
}

// ManualClock is a clock that moves only when Advance is called, for tests
// and simulation. Timers due at or before the new time fire during Advance,
// in deadline order (timers with one deadline in the order they were
// armed), each sending its deadline. Safe for concurrent use.
type ManualClock struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64         // arming order, to break deadline ties
	timers []*manualTimer // armed timers
	armed  chan struct{}  // closed and replaced whenever a timer is armed
}

// NewManualClock returns a ManualClock reading start.
func NewManualClock(start time.Time) *ManualClock {
	return &ManualClock{now: start, armed: make(chan struct{})}
}

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer firing once the clock has advanced by d. A timer
// with d <= 0 fires at once.
func (c *ManualClock) NewTimer(d time.Duration) Timer {
	t := &manualTimer{clock: c, c: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

// Advance moves the clock forward by d, firing the timers that fall due
// on the way. A timer's channel holds one value, as a real timer's: a
// firing nobody received is not repeated.
func (c *ManualClock) Advance(d time.Duration) {
	if d < 0 {
		panic("env: ManualClock.Advance with a negative duration")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	target := c.now.Add(d)
	for {
		t := c.earliestLocked()
		if t == nil || t.deadline.After(target) {
			break
		}
		if t.deadline.After(c.now) {
			c.now = t.deadline
		}
		c.fireLocked(t)
	}
	c.now = target
}

// WaitArmed blocks until a timer is armed to fire at or before deadline,
// or ctx ends. Tests use it to know that a component set the timer an
// Advance is meant to fire, without sleeping.
func (c *ManualClock) WaitArmed(ctx context.Context, deadline time.Time) error {
	for {
		c.mu.Lock()
		t, armed := c.earliestLocked(), c.armed
		due := t != nil && !t.deadline.After(deadline)
		c.mu.Unlock()
		if due {
			return nil
		}
		select {
		case <-armed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// earliestLocked returns the armed timer due first, or nil.
func (c *ManualClock) earliestLocked() *manualTimer {
	var first *manualTimer
	for _, t := range c.timers {
		if first == nil || t.deadline.Before(first.deadline) ||
			(t.deadline.Equal(first.deadline) && t.seq < first.seq) {
			first = t
		}
	}
	return first
}

// fireLocked disarms t and sends it its deadline.
func (c *ManualClock) fireLocked(t *manualTimer) {
	c.disarmLocked(t)
	select {
	case t.c <- t.deadline:
	default:
	}
}

// disarmLocked removes t from the armed timers; true when it was there.
func (c *ManualClock) disarmLocked(t *manualTimer) bool {
	for i, armed := range c.timers {
		if armed == t {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			return true
		}
	}
	return false
}

type manualTimer struct {
	clock    *ManualClock
	c        chan time.Time
	deadline time.Time
	seq      uint64
}

func (t *manualTimer) C() <-chan time.Time { return t.c }

func (t *manualTimer) Stop() bool {
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	t.drain()
	return c.disarmLocked(t)
}

func (t *manualTimer) Reset(d time.Duration) bool {
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	return t.resetLocked(c.now.Add(d))
}

func (t *manualTimer) ResetAt(deadline time.Time) bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	return t.resetLocked(deadline)
}

// resetLocked arms t at deadline, firing it at once when that has passed.
func (t *manualTimer) resetLocked(deadline time.Time) bool {
	c := t.clock
	t.drain()
	wasArmed := c.disarmLocked(t)
	c.seq++
	t.deadline, t.seq = deadline, c.seq
	if !deadline.After(c.now) {
		c.fireLocked(t)
		return wasArmed
	}
	c.timers = append(c.timers, t)
	close(c.armed)
	c.armed = make(chan struct{})
	return wasArmed
}

// drain drops a value fired but not received, so that nothing from before
// a Stop or Reset is seen after it.
func (t *manualTimer) drain() {
	select {
	case <-t.c:
	default:
	}
}
