package kafka

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/quota"
)

// requestThrottles is how many replies request_percentage throttled so far.
func requestThrottles(t *testing.T) uint64 {
	t.Helper()
	var m dto.Metric
	if err := throttleSeconds.WithLabelValues("request").(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// TestNodeRequestsAreNotThrottled: under a request_percentage quota any
// request goes over, WriteTxnMarkers (what nodes send each other) is not
// throttled, while a Metadata request of the same connection is.
func TestNodeRequestsAreNotThrottled(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.QuotaWindow = quotaWindow })
	alterQuota(t, ts, kadm.ClientQuotaEntity{component(quota.TypeClientID, kmsg.StringPtr("test"))}, quota.RequestPercentage, 1e-6)
	rc := ts.dial(t)
	before := requestThrottles(t)
	for range 3 {
		rc.roundTrip(kmsg.NewPtrWriteTxnMarkersRequest())
	}
	if got := requestThrottles(t); got != before {
		t.Fatalf("WriteTxnMarkers throttled %d times", got-before)
	}
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(9)
	req.Topics = []kmsg.MetadataRequestTopic{}
	if resp := rc.roundTrip(req).(*kmsg.MetadataResponse); resp.ThrottleMillis <= 0 || requestThrottles(t) == before {
		t.Fatalf("the quota throttles nothing (throttle_time_ms %d): the test shows nothing", resp.ThrottleMillis)
	}
}
