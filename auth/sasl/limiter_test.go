package sasl

import (
	"fmt"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := NewLimiter(LimiterConfig{Burst: 3, Refill: time.Second, AddressesMax: 4})
	now := time.Unix(0, 0)
	for i := 0; i < 3; i++ {
		if !l.Allowed("a", now) {
			t.Fatalf("refused after %d failures", i)
		}
		l.Failed("a", now)
	}
	if l.Allowed("a", now) {
		t.Fatal("allowed after the burst")
	}
	if !l.Allowed("b", now) {
		t.Fatal("another address refused")
	}
	if l.Allowed("a", now.Add(999*time.Millisecond)) || !l.Allowed("a", now.Add(time.Second)) {
		t.Fatal("not one token back after one refill period")
	}
	for i := range 10 {
		l.Failed(fmt.Sprint("addr", i), now)
	}
	if len(l.buckets) > 4 {
		t.Fatalf("%d buckets kept, at most 4", len(l.buckets))
	}
}
