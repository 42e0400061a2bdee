package backoff

import (
	"context"
	"testing"
	"time"
)

// TestPause: pauses double from Initial, stop at Max, and jitter stays
// within [d/2, d].
func TestPause(t *testing.T) {
	p := Policy{Initial: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{{1, 10 * time.Millisecond}, {2, 20 * time.Millisecond}, {3, 40 * time.Millisecond}, {4, 80 * time.Millisecond}, {30, 80 * time.Millisecond}} {
		for range 100 {
			got := p.Pause(tc.attempt)
			if got < tc.want/2 || got > tc.want {
				t.Fatalf("attempt %d: pause %s outside [%s, %s]", tc.attempt, got, tc.want/2, tc.want)
			}
		}
	}
	if got := (Policy{}).Pause(5); got != 0 {
		t.Fatalf("zero policy paused %s", got)
	}
}

// TestSleepEndsWithContext: a cancelled context cuts a sleep short.
func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := Sleep(ctx, time.Minute); err != context.Canceled {
		t.Fatalf("Sleep = %v, want context.Canceled", err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("Sleep ignored the cancelled context")
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
}
