package kafka

// Client quotas (package quota): each reply is measured against the
// quotas of the connection's (user, client id) — a produce's request bytes
// against producer_byte_rate, a fetch's response bytes against
// consumer_byte_rate, and the time the handler's synchronous part took
// against request_percentage. A client over a quota is answered at once
// with throttle_time_ms set to its back-off (the largest of the three),
// and the connection is muted for that long once the reply is written: the
// read loop hands it no further request until then (KIP-219).
//
// Deviation from Kafka: replies of versions older than KIP-219 (Produce
// before v6, Fetch before v8) are not delayed either; such clients do not
// back off on their own, but the muted connection holds them to the rate
// all the same. A follower's fetch (replica id ≥ 0) is never throttled, nor
// are the requests nodes send each other for transactions (WriteTxnMarkers,
// AddPartitionsToTxn v4+): as Kafka exempts cluster actions, so that a
// quota on the principal the nodes act as never delays markers.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/quota"
)

// quotaUse is what one request consumed, taken on the handle loop.
type quotaUse struct {
	user, clientID string
	requestBytes   int           // a produce's frame
	handling       time.Duration // the handler's synchronous part
}

// throttle records what the reply to p consumed, responseBytes being its
// encoded size (resp is nil for a produce with acks=0, which is measured
// all the same), and returns how long the client must back off.
func (c *conn) throttle(p *pending, responseBytes int) time.Duration {
	if nodeRequest(p.header) {
		return 0
	}
	q := c.s.quotas
	u := p.quota
	var wait time.Duration
	switch {
	case p.header.key == kmsg.Produce.Int16():
		wait = c.observeThrottle("produce", q.Record(quota.ProducerByteRate, u.user, u.clientID, float64(u.requestBytes)))
	case p.header.key == kmsg.Fetch.Int16():
		if !p.follower {
			wait = c.observeThrottle("fetch", q.Record(quota.ConsumerByteRate, u.user, u.clientID, float64(responseBytes)))
		}
	}
	// request_percentage: percent of one handler's time, so a second of
	// handling is 100 percent-seconds.
	request := c.observeThrottle("request", q.Record(quota.RequestPercentage, u.user, u.clientID, 100*u.handling.Seconds()))
	return max(wait, request)
}

// nodeRequest reports whether h is a request one node sends another for
// transactions (peers.go), which no quota limits.
func nodeRequest(h requestHeader) bool {
	return h.key == kmsg.WriteTxnMarkers.Int16() || (h.key == kmsg.AddPartitionsToTxn.Int16() && h.version >= 4)
}

func (c *conn) observeThrottle(kind string, d time.Duration) time.Duration {
	if d > 0 {
		throttleSeconds.WithLabelValues(kind).Observe(d.Seconds())
	}
	return d
}

// mute keeps the read loop from handing on requests until d from now.
func (c *conn) mute(d time.Duration) {
	until := c.s.clock.Now().Add(d).UnixNano()
	for {
		old := c.mutedUntil.Load()
		if old >= until || c.mutedUntil.CompareAndSwap(old, until) {
			return
		}
	}
}

// waitUnmuted returns once the connection is no longer muted, or false when
// it closes first.
func (c *conn) waitUnmuted() bool {
	for {
		until := time.Unix(0, c.mutedUntil.Load())
		if !c.s.clock.Now().Before(until) {
			return true
		}
		t := c.s.clock.NewTimer(until.Sub(c.s.clock.Now()))
		select {
		case <-t.C():
		case <-c.ctx.Done():
			t.Stop()
			return false
		}
	}
}
