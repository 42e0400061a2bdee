package kafka

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestConnectionLimits: past ConnectionsMax a new connection is closed on
// accept while the existing ones keep working; an idle connection is closed
// after IdleTimeout.
func TestConnectionLimits(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.ConnectionsMax = 2; c.IdleTimeout = 300 * time.Millisecond })
	a, b := ts.dial(t), ts.dial(t)
	a.roundTrip(kmsg.NewPtrApiVersionsRequest())
	b.roundTrip(kmsg.NewPtrApiVersionsRequest())
	if c := ts.dial(t); !c.closed() {
		t.Fatal("third connection accepted with ConnectionsMax 2")
	}
	time.Sleep(400 * time.Millisecond)
	if !a.closed() {
		t.Fatal("idle connection still open after IdleTimeout")
	}
	// The slots of closed connections are given back.
	time.Sleep(50 * time.Millisecond)
	d := ts.dial(t)
	d.roundTrip(kmsg.NewPtrApiVersionsRequest())
}
