package loadgen

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// fakeClock moves only when a sender sleeps or spends time sending.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) SleepUntil(ctx context.Context, deadline time.Time) error {
	if deadline.After(c.now) {
		c.now = deadline
	}
	return ctx.Err()
}

func (c *fakeClock) spend(d time.Duration) { c.now = c.now.Add(d) }

func TestPacerHoldsTheRateOnAFakeClock(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	start := clock.Now()
	const ratePerSecond = 2500
	pacer := NewPacer(ratePerSecond, start)
	random := rand.New(rand.NewPCG(5, 6))
	runFor := 20 * time.Second
	var sent int64
	for n := int64(0); ; n++ {
		due, err := pacer.Wait(context.Background(), clock, n)
		if err != nil {
			t.Fatal(err)
		}
		if clock.Now().Sub(start) >= runFor {
			break
		}
		if clock.Now().Before(due) {
			t.Fatalf("record %d sent at %s, before it was due at %s", n, clock.Now().Sub(start), due.Sub(start))
		}
		if want := start.Add(time.Duration(n * 1e9 / ratePerSecond)); !due.Equal(want) {
			t.Fatalf("record %d due at %s, want %s", n, due.Sub(start), want.Sub(start))
		}
		sent++
		// Sending costs between 0 and 300 µs against a 400 µs interval,
		// and now and then the sender stalls for 50 ms.
		clock.spend(time.Duration(random.Int64N(300)) * time.Microsecond)
		if n%5000 == 4999 {
			clock.spend(50 * time.Millisecond)
		}
	}
	wantSent := int64(ratePerSecond * runFor.Seconds())
	if sent < wantSent-1 || sent > wantSent+1 {
		t.Errorf("sent %d records in %s at %d/s, want %d ± 1: stalls must be made up, not lost",
			sent, runFor, ratePerSecond, wantSent)
	}
}

func TestPacerCatchesUpAfterAStallWithoutSleeping(t *testing.T) {
	clock := &fakeClock{now: time.Unix(0, 0)}
	start := clock.Now()
	pacer := NewPacer(1000, start)
	clock.spend(10 * time.Millisecond) // the sender was 10 records late
	for n := int64(0); n < 10; n++ {
		due, err := pacer.Wait(context.Background(), clock, n)
		if err != nil {
			t.Fatal(err)
		}
		if clock.Now() != start.Add(10*time.Millisecond) {
			t.Fatalf("record %d slept although it was late", n)
		}
		// Latency of a late record runs from its due time, not from now.
		if want := start.Add(time.Duration(n) * time.Millisecond); !due.Equal(want) {
			t.Errorf("record %d measured from %s, want its due time %s", n, due.Sub(start), want.Sub(start))
		}
	}
	if due, _ := pacer.Wait(context.Background(), clock, 11); clock.Now() != due || due != start.Add(11*time.Millisecond) {
		t.Errorf("record 11 sent at %s, want it to wait until 11ms", clock.Now().Sub(start))
	}
}

func TestUnpacedPacerNeverWaits(t *testing.T) {
	clock := &fakeClock{now: time.Unix(0, 0)}
	pacer := NewPacer(0, clock.Now())
	if pacer.Paced() {
		t.Fatal("rate 0 must not pace")
	}
	clock.spend(time.Second)
	got, err := pacer.Wait(context.Background(), clock, 1_000_000)
	if err != nil || !got.Equal(clock.Now()) {
		t.Errorf("Wait = %v, %v; want now and no error", got, err)
	}
}

func TestPacerWaitStopsWithTheContext(t *testing.T) {
	clock := &fakeClock{now: time.Unix(0, 0)}
	pacer := NewPacer(1, clock.Now())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := pacer.Wait(ctx, clock, 5); err == nil {
		t.Error("Wait with a cancelled context returned no error")
	}
}
