package loadgen

import (
	"context"
	"math"
	"time"
)

// Clock is the time source of the load loops; tests pass a fake one.
type Clock interface {
	Now() time.Time
	// SleepUntil returns at deadline or when ctx is done, with ctx's error.
	SleepUntil(ctx context.Context, deadline time.Time) error
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now, which carries the monotonic reading that makes
// differences immune to wall-clock steps.
func (SystemClock) Now() time.Time { return time.Now() }

// SleepUntil sleeps until deadline or until ctx is done.
func (SystemClock) SleepUntil(ctx context.Context, deadline time.Time) error {
	wait := time.Until(deadline)
	if wait <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Pacer spaces sends at a fixed rate: record n (counted from 0 across every
// producer) is due at start + n/rate. The schedule is fixed in advance, so a
// sender that stalls catches up afterwards instead of silently lowering the
// rate, and each record's latency can be measured from when it was due
// rather than from when a late sender got to it (which would hide the stall:
// coordinated omission).
type Pacer struct {
	start         time.Time
	ratePerSecond float64 // 0: no pacing
}

// NewPacer paces at ratePerSecond from start; a rate of 0 or less means
// every record is due at once.
func NewPacer(ratePerSecond float64, start time.Time) Pacer {
	return Pacer{start: start, ratePerSecond: max(ratePerSecond, 0)}
}

// Paced reports whether the pacer limits the rate.
func (p Pacer) Paced() bool { return p.ratePerSecond > 0 }

// Due returns when record n is due.
func (p Pacer) Due(n int64) time.Time {
	// Multiplying before dividing keeps whole-nanosecond due times exact.
	return p.start.Add(time.Duration(math.Round(float64(n) * 1e9 / p.ratePerSecond)))
}

// Wait blocks until record n is due and returns the time its latency is
// measured from: its due time when paced, otherwise now.
func (p Pacer) Wait(ctx context.Context, clock Clock, n int64) (time.Time, error) {
	if !p.Paced() {
		return clock.Now(), ctx.Err()
	}
	due := p.Due(n)
	if clock.Now().Before(due) {
		if err := clock.SleepUntil(ctx, due); err != nil {
			return time.Time{}, err
		}
	}
	return due, nil
}
