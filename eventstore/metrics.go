package eventstore

import (
	"errors"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	appends = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cairn_eventstore_appends_total",
		Help: "Event-store appends by outcome: ok, duplicate (a retry answered from the index), conflict (wrong expected revision), error.",
	}, []string{"result"})
	appendSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "cairn_eventstore_append_seconds",
		Help:    "Time from receiving an append to answering it, including the wait for durability.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	subscriptions = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "cairn_eventstore_subscriptions",
		Help: "Subscriptions open now.",
	})
	subscriptionEvents = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cairn_eventstore_subscription_events_total",
		Help: "Events sent to subscribers.",
	})
	forwardedCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cairn_eventstore_forwarded_total",
		Help: "Calls this node forwarded to the leader of their partitions, by method (appends are counted where they are served).",
	}, []string{"method"})
)

// Collectors returns the event-store metrics for registration.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{appends, appendSeconds, subscriptions, subscriptionEvents, forwardedCalls}
}

// countAppend records an append's outcome.
func countAppend(duplicate bool, err error) {
	var ce *connect.Error
	switch {
	case err == nil && duplicate:
		appends.WithLabelValues("duplicate").Inc()
	case err == nil:
		appends.WithLabelValues("ok").Inc()
	case errors.As(err, &ce) && ce.Code() == connect.CodeFailedPrecondition:
		appends.WithLabelValues("conflict").Inc()
	default:
		appends.WithLabelValues("error").Inc()
	}
}
