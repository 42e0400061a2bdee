package server

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairnlog/cairn/cluster"
)

// clusterCollector reports per-partition gauges at scrape time, so nothing
// is kept per partition between scrapes.
type clusterCollector struct {
	c       *cluster.Cluster
	topics  *prometheus.Desc
	hwm     *prometheus.Desc
	start   *prometheus.Desc
	size    *prometheus.Desc
	offline *prometheus.Desc
}

func newClusterCollector(c *cluster.Cluster) *clusterCollector {
	labels := []string{"topic", "partition"}
	return &clusterCollector{c: c,
		topics:  prometheus.NewDesc("cairn_topics", "Topics on this node.", nil, nil),
		hwm:     prometheus.NewDesc("cairn_partition_high_watermark", "Durable log end offset.", labels, nil),
		start:   prometheus.NewDesc("cairn_partition_log_start_offset", "First offset still in the log.", labels, nil),
		size:    prometheus.NewDesc("cairn_partition_size_bytes", "Bytes of segments on disk.", labels, nil),
		offline: prometheus.NewDesc("cairn_partitions_offline", "Partitions offline after a storage failure.", nil, nil),
	}
}

func (cc *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cc.topics
	ch <- cc.hwm
	ch <- cc.start
	ch <- cc.size
	ch <- cc.offline
}

func (cc *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	topics := cc.c.Topics()
	ch <- prometheus.MustNewConstMetric(cc.topics, prometheus.GaugeValue, float64(len(topics)))
	offline := 0
	for _, t := range topics {
		for _, slot := range t.Partitions {
			p := slot.Partition
			if slot.NoLocalReplica() {
				continue // served by other nodes
			}
			if p == nil || p.Err() != nil {
				offline++
				continue
			}
			idx := strconv.Itoa(int(slot.Index))
			ch <- prometheus.MustNewConstMetric(cc.hwm, prometheus.GaugeValue, float64(p.HighWatermark()), t.Name, idx)
			ch <- prometheus.MustNewConstMetric(cc.start, prometheus.GaugeValue, float64(p.LogStartOffset()), t.Name, idx)
			ch <- prometheus.MustNewConstMetric(cc.size, prometheus.GaugeValue, float64(p.SizeBytes()), t.Name, idx)
		}
	}
	ch <- prometheus.MustNewConstMetric(cc.offline, prometheus.GaugeValue, float64(offline))
}
