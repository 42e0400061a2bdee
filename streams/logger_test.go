package streams

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/env"
)

// TestPebbleErrorsRateLimitedOnTheClock: pebble's error messages are
// logged at most once a second of the index's clock, the next one
// counting those suppressed; the clock is the env's, so a simulation's
// manual clock decides, not the wall clock.
func TestPebbleErrorsRateLimitedOnTheClock(t *testing.T) {
	clock := env.NewManualClock(time.Unix(1_700_000_000, 0))
	var out bytes.Buffer
	l := &pebbleLogger{l: slog.New(slog.NewTextHandler(&out, nil)), clock: clock}
	l.Errorf("first")
	l.Errorf("second")
	l.Errorf("third")
	clock.Advance(999 * time.Millisecond)
	l.Errorf("fourth")
	if got := strings.Count(out.String(), "stream index: "); got != 1 {
		t.Fatalf("%d messages logged within a second of the clock:\n%s", got, out.String())
	}
	clock.Advance(time.Millisecond)
	l.Errorf("fifth")
	if !strings.Contains(out.String(), `msg="stream index: fifth" similar_errors_suppressed=3`) {
		t.Fatalf("after a second of the clock:\n%s", out.String())
	}
}
