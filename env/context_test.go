package env

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWithTimeoutEndsOnItsClock(t *testing.T) {
	clock := NewManualClock(time.Unix(1000, 0))
	ctx, cancel := WithTimeout(context.Background(), clock, 5*time.Second)
	defer cancel()
	if _, ok := ctx.Deadline(); ok {
		t.Fatal("a context on a manual clock reports a deadline the wall clock would misread")
	}
	if err := clock.WaitArmed(context.Background(), clock.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	clock.Advance(4 * time.Second)
	select {
	case <-ctx.Done():
		t.Fatal("ended before its time on the clock")
	case <-time.After(20 * time.Millisecond):
	}
	clock.Advance(time.Second)
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("not ended once its time passed on the clock")
	}
	if err := ctx.Err(); err != context.DeadlineExceeded {
		t.Fatalf("Err = %v, want context.DeadlineExceeded", err)
	}
	if !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		t.Fatalf("Cause = %v", context.Cause(ctx))
	}
}

func TestWithTimeoutCancelled(t *testing.T) {
	clock := NewManualClock(time.Unix(1000, 0))
	ctx, cancel := WithTimeout(context.Background(), clock, time.Second)
	cancel()
	<-ctx.Done()
	if err := ctx.Err(); err != context.Canceled {
		t.Fatalf("Err = %v, want context.Canceled", err)
	}
	clock.Advance(2 * time.Second) // the timer was stopped: nothing changes
	if err := ctx.Err(); err != context.Canceled {
		t.Fatalf("Err after the deadline = %v, want context.Canceled", err)
	}

	parent, cancelParent := context.WithCancel(context.Background())
	ctx, cancel = WithTimeout(parent, clock, time.Second)
	defer cancel()
	cancelParent()
	<-ctx.Done()
	if err := ctx.Err(); err != context.Canceled {
		t.Fatalf("Err after the parent's cancel = %v, want context.Canceled", err)
	}
}

func TestWithTimeoutOnTheRealClock(t *testing.T) {
	ctx, cancel := WithTimeout(context.Background(), RealClock(), 10*time.Millisecond)
	defer cancel()
	if _, ok := ctx.Deadline(); !ok {
		t.Fatal("the real clock's context has no deadline")
	}
	<-ctx.Done()
	if err := ctx.Err(); err != context.DeadlineExceeded {
		t.Fatalf("Err = %v, want context.DeadlineExceeded", err)
	}
}
