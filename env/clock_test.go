package env

import (
	"context"
	"testing"
	"time"
)

// step is one operation on a ManualClock and its timers.
type step struct {
	op    string // "arm", "stop", "reset", "resetAt" (d after the start), "advance"
	timer string
	d     time.Duration
	want  bool // what stop or reset returns
}

// TestManualClock: timers fire when an Advance reaches their deadline, each
// with its deadline as value; Stop and Reset disarm and drop a firing not
// yet received; Now ends at the Advance's target.
func TestManualClock(t *testing.T) {
	start := time.Unix(1_000, 0)
	cases := []struct {
		name  string
		steps []step
		fired map[string]time.Duration // timer → its value, relative to start
		now   time.Duration
	}{
		{name: "due timers fire at their deadlines, later ones wait",
			steps: []step{{op: "arm", timer: "a", d: 3 * time.Second}, {op: "arm", timer: "b", d: time.Second},
				{op: "arm", timer: "c", d: 5 * time.Second}, {op: "advance", d: 4 * time.Second}},
			fired: map[string]time.Duration{"a": 3 * time.Second, "b": time.Second}, now: 4 * time.Second},
		{name: "a deadline equal to the target is due",
			steps: []step{{op: "arm", timer: "a", d: time.Second}, {op: "advance", d: time.Second}},
			fired: map[string]time.Duration{"a": time.Second}, now: time.Second},
		{name: "stop disarms",
			steps: []step{{op: "arm", timer: "a", d: time.Second}, {op: "stop", timer: "a", want: true},
				{op: "advance", d: 2 * time.Second}, {op: "stop", timer: "a", want: false}},
			fired: map[string]time.Duration{}, now: 2 * time.Second},
		{name: "stop drops a firing not yet received",
			steps: []step{{op: "arm", timer: "a", d: time.Second}, {op: "advance", d: time.Second},
				{op: "stop", timer: "a", want: false}},
			fired: map[string]time.Duration{}, now: time.Second},
		{name: "reset re-arms from the current time",
			steps: []step{{op: "arm", timer: "a", d: time.Second}, {op: "advance", d: 500 * time.Millisecond},
				{op: "reset", timer: "a", d: time.Second, want: true}, {op: "advance", d: 900 * time.Millisecond},
				{op: "advance", d: 100 * time.Millisecond}},
			fired: map[string]time.Duration{"a": 1500 * time.Millisecond}, now: 1500 * time.Millisecond},
		{name: "reset drops the earlier firing",
			steps: []step{{op: "arm", timer: "a", d: time.Second}, {op: "advance", d: 2 * time.Second},
				{op: "reset", timer: "a", d: time.Second, want: false}, {op: "advance", d: time.Second}},
			fired: map[string]time.Duration{"a": 3 * time.Second}, now: 3 * time.Second},
		{name: "reset before the deadline moves it later",
			steps: []step{{op: "arm", timer: "a", d: time.Second}, {op: "reset", timer: "a", d: 3 * time.Second, want: true},
				{op: "advance", d: 2 * time.Second}},
			fired: map[string]time.Duration{}, now: 2 * time.Second},
		{name: "resetAt arms at an instant, whatever the time now",
			steps: []step{{op: "arm", timer: "a", d: time.Second}, {op: "advance", d: 500 * time.Millisecond},
				{op: "resetAt", timer: "a", d: 2 * time.Second, want: true}, {op: "advance", d: 1500 * time.Millisecond}},
			fired: map[string]time.Duration{"a": 2 * time.Second}, now: 2 * time.Second},
		{name: "resetAt a passed instant fires at once",
			steps: []step{{op: "arm", timer: "a", d: time.Hour}, {op: "advance", d: 2 * time.Second},
				{op: "resetAt", timer: "a", d: time.Second, want: true}},
			fired: map[string]time.Duration{"a": time.Second}, now: 2 * time.Second},
		{name: "a zero duration fires at once",
			steps: []step{{op: "arm", timer: "a", d: 0}},
			fired: map[string]time.Duration{"a": 0}, now: 0},
		{name: "a timer armed at a deadline fires after one armed earlier is stopped",
			steps: []step{{op: "arm", timer: "a", d: time.Second}, {op: "arm", timer: "b", d: time.Second},
				{op: "stop", timer: "a", want: true}, {op: "advance", d: time.Second}},
			fired: map[string]time.Duration{"b": time.Second}, now: time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := NewManualClock(start)
			timers := map[string]Timer{}
			for i, s := range tc.steps {
				switch s.op {
				case "arm":
					timers[s.timer] = clock.NewTimer(s.d)
				case "stop":
					if got := timers[s.timer].Stop(); got != s.want {
						t.Fatalf("step %d: stop %s = %v, want %v", i, s.timer, got, s.want)
					}
				case "reset":
					if got := timers[s.timer].Reset(s.d); got != s.want {
						t.Fatalf("step %d: reset %s = %v, want %v", i, s.timer, got, s.want)
					}
				case "resetAt":
					if got := timers[s.timer].ResetAt(start.Add(s.d)); got != s.want {
						t.Fatalf("step %d: resetAt %s = %v, want %v", i, s.timer, got, s.want)
					}
				case "advance":
					clock.Advance(s.d)
				}
			}
			for name, timer := range timers {
				select {
				case at := <-timer.C():
					want, ok := tc.fired[name]
					if !ok {
						t.Errorf("timer %s fired at %v, want not fired", name, at.Sub(start))
					} else if at.Sub(start) != want {
						t.Errorf("timer %s fired at %v, want %v", name, at.Sub(start), want)
					}
				default:
					if want, ok := tc.fired[name]; ok {
						t.Errorf("timer %s did not fire, want fired at %v", name, want)
					}
				}
			}
			if got := clock.Now().Sub(start); got != tc.now {
				t.Errorf("now %v, want %v", got, tc.now)
			}
		})
	}
}

// TestWaitArmed: WaitArmed returns once a timer due by the given deadline
// is armed, and not for a later one.
func TestWaitArmed(t *testing.T) {
	start := time.Unix(0, 0)
	clock := NewManualClock(start)
	late := clock.NewTimer(time.Hour)
	defer late.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := clock.WaitArmed(ctx, start.Add(time.Minute)); err != context.DeadlineExceeded {
		t.Fatalf("WaitArmed with only a later timer: %v, want the context's deadline", err)
	}
	done := make(chan error, 1)
	go func() {
		done <- clock.WaitArmed(context.Background(), start.Add(time.Minute))
	}()
	soon := clock.NewTimer(30 * time.Second)
	defer soon.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
