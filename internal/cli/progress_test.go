package cli

import (
	"testing"
	"time"
)

func TestProgressMeterReportsTheRateSinceTheLastLine(t *testing.T) {
	start := time.Unix(1000, 0)
	meter := NewProgressMeter(start)
	if got := meter.Line(500, start.Add(time.Second)); got != "acked 500 records, 500 records/s" {
		t.Errorf("first line %q", got)
	}
	if got := meter.Line(2500, start.Add(1500*time.Millisecond)); got != "acked 2500 records, 4000 records/s" {
		t.Errorf("second line %q", got)
	}
	// No time passing must not divide by zero.
	if got := meter.Line(2600, start.Add(1500*time.Millisecond)); got != "acked 2600 records, 0 records/s" {
		t.Errorf("same-instant line %q", got)
	}
}

func TestProduceSummary(t *testing.T) {
	if got := ProduceSummary(3, "orders"); got != "produced 3 records to orders" {
		t.Errorf("got %q", got)
	}
}
