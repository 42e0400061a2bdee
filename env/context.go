package env

import (
	"context"
	"time"
)

// WithTimeout is context.WithTimeout on clock: the context ends with
// context.DeadlineExceeded once d has passed on clock, so a bound a node
// puts on its own waits (a join, a start, a proposal) runs on simulated
// time in a simulation, as its other timers do. On the real clock it is
// context.WithTimeout itself: no goroutine, nothing added to a hot path.
func WithTimeout(parent context.Context, clock Clock, d time.Duration) (context.Context, context.CancelFunc) {
	if _, real := clock.(realClock); real {
		return context.WithTimeout(parent, d)
	}
	inner, cancel := context.WithCancelCause(parent)
	ctx := &clockContext{Context: inner}
	timer := clock.NewTimer(d)
	go func() {
		select {
		case <-timer.C():
			cancel(context.DeadlineExceeded)
		case <-inner.Done():
			timer.Stop()
		}
	}()
	return ctx, func() { cancel(context.Canceled) }
}

// clockContext ends when its clock's timer fires. It reports no deadline:
// a deadline on a simulated clock means nothing to the code that reads one
// (socket deadlines, time.Until), which compares it with the wall clock.
// A parent's deadline, on the wall clock, still shows.
type clockContext struct {
	context.Context
}

// Err reports context.DeadlineExceeded when the clock's timer ended the
// context, as a context of context.WithTimeout does, so callers that tell
// a timeout from a cancellation keep working.
func (c *clockContext) Err() error {
	err := c.Context.Err()
	if err != nil && context.Cause(c.Context) == context.DeadlineExceeded {
		return context.DeadlineExceeded
	}
	return err
}
