package kafka

import "github.com/prometheus/client_golang/prometheus"

var (
	connectionsOpen = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "cairn_kafka_connections",
		Help: "Open Kafka protocol connections.",
	})
	connectionsRejected = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cairn_kafka_connections_rejected_total",
		Help: "Connections closed on accept because connections max was reached.",
	})
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cairn_kafka_requests_total",
		Help: "Kafka requests decoded, by API.",
	}, []string{"api"})
	requestErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cairn_kafka_bad_requests_total",
		Help: "Requests that could not be decoded or named an unsupported API or version; each closed its connection.",
	})
	producedRecords = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cairn_kafka_produced_records_total",
		Help: "Records acknowledged to Kafka producers (or appended, for acks=0).",
	})
	fetchedBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cairn_kafka_fetched_bytes_total",
		Help: "Record batch bytes returned to Kafka fetchers.",
	})
	sentfileBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cairn_kafka_fetch_sendfile_bytes_total",
		Help: "Record batch bytes sent to Kafka fetchers from segment files with sendfile, never read into memory (plain TCP connections).",
	})
	fetchRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cairn_kafka_fetch_requests_total",
		Help: "Fetch requests by kind: full (opening a session, KIP-227), incremental (in a session), sessionless, session_error (unknown session or wrong epoch).",
	}, []string{"kind"})
	saslAuthentications = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cairn_kafka_sasl_authentications_total",
		Help: "SASL authentications on the Kafka listener, by mechanism and outcome (success, failure, refused: over the address's failure limit).",
	}, []string{"mechanism", "outcome"})
	requestSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "cairn_kafka_request_seconds",
		Help: "Time from a request's last byte read to its response handed to the socket, by API: " +
			"queueing behind the connection's earlier requests, handling, and for acks=all produce the sync. " +
			"A fetch's long poll counts too.",
		Buckets: prometheus.ExponentialBuckets(50e-6, 2, 18), // 50 µs to 6.6 s
	}, []string{"api"})
	throttleSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cairn_kafka_quota_throttle_seconds",
		Help:    "Back-offs given to clients over a quota, by kind: produce (producer_byte_rate), fetch (consumer_byte_rate), request (request_percentage).",
		Buckets: prometheus.ExponentialBuckets(1e-3, 2, 15), // 1 ms to 16 s
	}, []string{"kind"})
)

// Collectors returns the Kafka listener's metrics for registration.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{connectionsOpen, connectionsRejected, requestsTotal, requestErrors, producedRecords, fetchedBytes, sentfileBytes, fetchRequests, saslAuthentications, requestSeconds, throttleSeconds}
}
