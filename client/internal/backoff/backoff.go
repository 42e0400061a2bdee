// Package backoff holds the pauses the SDK's packages take between attempts:
// exponential, capped and jittered so that clients retrying together spread
// out instead of colliding again.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy doubles a pause from Initial up to Max.
type Policy struct {
	Initial time.Duration
	Max     time.Duration
}

// Pause is the pause before attempt number attempt+1 (attempt counts from
// 1): Initial doubled attempt-1 times, at most Max, then jittered.
func (p Policy) Pause(attempt int) time.Duration {
	d := p.Initial
	for i := 1; i < attempt && d < p.Max; i++ {
		d *= 2
	}
	return Jitter(min(d, p.Max))
}

// Jitter returns a random duration in [d/2, d].
func Jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// Sleep waits for d or until ctx ends, whichever is first.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
